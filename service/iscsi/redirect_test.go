package iscsi

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/bmi-go/bmi/internal/testenv"
)

// mapLocator is a Locator over a map: an address, an error, or nothing
// (not served anywhere).
type mapLocator struct {
	mu    sync.Mutex
	addrs map[string]string
	errs  map[string]error
	asked []string
}

func (m *mapLocator) Locate(_ context.Context, iqn, _ string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.asked = append(m.asked, iqn)
	if err := m.errs[iqn]; err != nil {
		return "", err
	}
	return m.addrs[iqn], nil
}

// TestLoginRedirect: a login for a target this Target does not export is
// redirected to the portal the Locator names (status 0x0101 with its
// TargetAddress), answered "service unavailable" (retryable) when the
// Locator cannot say, or when the portal it names is the very address the
// initiator connected to (a loop), and "not found" only when no one
// serves it. A target exported here is never looked up.
func TestLoginRedirect(t *testing.T) {
	loc := &mapLocator{addrs: map[string]string{}, errs: map[string]error{}}
	obs := &recObserver{}
	tg, addr := startTarget(t, Config{Locator: loc, Logins: obs})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20)})
	loc.addrs[testIQN(1)] = "10.0.0.9:3260" // must not be asked: exported here
	loc.addrs[testIQN(2)] = "10.0.0.2:3260"
	loc.addrs[testIQN(3)] = "[fd00::2]:3261"
	loc.errs[testIQN(4)] = errors.New("gateway gw-b's lease expired: it is being taken over")
	loc.addrs[testIQN(5)] = addr // the owner's address moved here
	cases := map[string]struct {
		iqn      string
		status   uint16
		redirect string
	}{
		"exported here":           {testIQN(1), loginOK, ""},
		"on another gateway":      {testIQN(2), loginMovedTemp, "10.0.0.2:3260,1"},
		"ipv6 portal":             {testIQN(3), loginMovedTemp, "[fd00::2]:3261,1"},
		"owner being taken over":  {testIQN(4), loginServiceUnavailable, ""},
		"owner address held here": {testIQN(5), loginServiceUnavailable, ""},
		"served nowhere":          {testIQN(6), loginNotFound, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cl := dial(t, addr)
			r, m := cl.loginStep(cl.loginPDU(0, 1, true, []keyValue{{"InitiatorName", "iqn.2026-11.org.test:init"},
				{"TargetName", c.iqn}, {"AuthMethod", "None"}}))
			st := uint16(r.bhs[36])<<8 | uint16(r.bhs[37])
			if st != c.status {
				t.Fatalf("login status 0x%04x, want 0x%04x (%v)", st, c.status, m)
			}
			if m["TargetAddress"] != c.redirect {
				t.Fatalf("TargetAddress %q, want %q", m["TargetAddress"], c.redirect)
			}
			if c.status != loginOK && r.flags()&0x80 != 0 {
				t.Fatal("a login that ends in a redirect or a refusal has the transit bit set")
			}
		})
	}
	for _, iqn := range loc.asked {
		if iqn == testIQN(1) {
			t.Fatalf("the Locator was asked about %s, which is exported here", iqn)
		}
	}
	// A redirect is not an authentication failure (throttling never counts
	// it) and says where the initiator went.
	obs.mu.Lock()
	defer obs.mu.Unlock()
	redirected := 0
	for _, ev := range obs.events {
		if ev.AuthFailed {
			t.Fatalf("login event %+v counts as an authentication failure", ev)
		}
		if ev.RedirectedTo != "" {
			redirected++
			if ev.OK || ev.RedirectedTo != "10.0.0.2:3260" && ev.RedirectedTo != "[fd00::2]:3261" {
				t.Fatalf("login event %+v", ev)
			}
		}
	}
	if redirected != 2 {
		t.Fatalf("%d login events name a redirect, want 2: %+v", redirected, obs.events)
	}
}

// TestLoginRedirectLibiscsi: a real initiator (libiscsi's iscsi-inq and
// iscsi-readcapacity16) given one portal reaches a target exported by
// another Target through its redirect, with CHAP, and is refused (not
// sent round in circles) for a target no one exports.
func TestLoginRedirectLibiscsi(t *testing.T) {
	other, otherAddr := startTarget(t, Config{})
	mustExport(t, other, Export{IQN: testIQN(7), Volume: newMemVolume(48 << 20), CHAP: nodeCHAP, Initiators: []string{initiatorIQN}})
	loc := &mapLocator{addrs: map[string]string{testIQN(7): otherAddr}}
	_, addr := startTarget(t, Config{Locator: loc}) // exports nothing itself

	out, err := runTool(t, "iscsi-readcapacity16", "-i", initiatorIQN, url(addr, testIQN(7), nodeCHAP))
	if err != nil || !strings.Contains(out, "Total size:50331648") {
		t.Fatalf("iscsi-readcapacity16 through the redirect: %v\n%s", err, out)
	}
	out, err = runTool(t, "iscsi-inq", "-i", initiatorIQN, url(addr, testIQN(7), nodeCHAP))
	if err != nil {
		t.Fatalf("iscsi-inq through the redirect: %v\n%s", err, out)
	}
	out, err = runTool(t, "iscsi-inq", "-i", initiatorIQN, url(addr, testIQN(8), nodeCHAP))
	if err == nil {
		t.Fatalf("iscsi-inq of a target no one exports succeeded:\n%s", out)
	}
}

// dirList is a Directory with a fixed list.
type dirList []Listed

func (d dirList) Elsewhere(context.Context, string) ([]Listed, error) { return d, nil }

// TestDiscoveryAcrossGateways: libiscsi's iscsi-ls discovering at one
// Target lists, beside that Target's own, the targets the Directory says
// other Targets export, each at the portal serving it, under the same
// credentials and ACL rules as its own (CHAP targets only with their
// credentials, none whose ACL leaves the initiator out); with -s it logs
// in to each where it is listed.
func TestDiscoveryAcrossGateways(t *testing.T) {
	testenv.RequireCommand(t, "iscsi-ls", "libiscsi-bin")
	other, otherAddr := startTarget(t, Config{})
	mustExport(t, other, Export{IQN: testIQN(7), Volume: newMemVolume(48 << 20), CHAP: nodeCHAP, Initiators: []string{initiatorIQN}})
	dir := dirList{
		{Export: Export{IQN: testIQN(7), CHAP: nodeCHAP, Initiators: []string{initiatorIQN}}, Portal: otherAddr},
		{Export: Export{IQN: testIQN(8), Initiators: []string{"iqn.2026-11.org.test:someone-else"}}, Portal: otherAddr},
		{Export: Export{IQN: testIQN(9)}, Portal: otherAddr}, // an empty ACL admits no one
		{Export: Export{IQN: testIQN(2), Initiators: []string{initiatorIQN}}, Portal: otherAddr},
	}
	tg, addr := startTarget(t, Config{Directory: dir})
	mustExport(t, tg, Export{IQN: testIQN(2), Volume: newMemVolume(32 << 20), Initiators: []string{initiatorIQN}})

	tests := []struct {
		name       string
		chap       *CHAP
		want, skip []string
	}{
		{"with chap", nodeCHAP, []string{testIQN(2) + " Portal:" + addr, testIQN(7) + " Portal:" + otherAddr + ",1 Lun:0 Type:DIRECT_ACCESS (Size:47M)"}, []string{testIQN(8), testIQN(9)}},
		{"without chap", nil, []string{testIQN(2) + " Portal:" + addr}, []string{testIQN(7), testIQN(8), testIQN(9)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runTool(t, "iscsi-ls", "-s", "-i", initiatorIQN, url(addr, "", tc.chap))
			if err != nil {
				t.Fatalf("iscsi-ls: %v\n%s", err, out)
			}
			flat := strings.Join(strings.Fields(out), " ")
			for _, w := range tc.want {
				if !strings.Contains(flat, "Target:"+w) {
					t.Errorf("iscsi-ls lacks %q:\n%s", w, out)
				}
			}
			for _, s := range tc.skip {
				if strings.Contains(out, s) {
					t.Errorf("iscsi-ls lists %s:\n%s", s, out)
				}
			}
		})
	}
}
