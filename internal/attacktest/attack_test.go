package attacktest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/netnstest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/guard"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/service/ipxe"
	"github.com/bmi-go/bmi/service/iscsi"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

// The victim: node-01 of tenant-a in configs/hil-mock.example.yaml.
var (
	victimMAC  = net.HardwareAddr{0x52, 0x54, 0, 0, 1, 1}
	victimNode = "node-01"
	secret     = "victim-chap-secret-42"
	targetIQN  = "iqn.2026-11.org.bmi:atk.1"
	nodeIQN    = iscsi.NodeInitiator("iqn.2026-11.org.bmi", "atk", "node-01")
	bmiCred    = hil.Credentials{User: "bmi", Password: "bmi-secret"}
	aliceCred  = hil.Credentials{User: "alice", Password: "alice-secret"}
)

// specs is the boot config table behind the power gate, as bmid's
// bootSpecs is.
type specs struct{ gate *guard.PowerGate }

func (s specs) node(mac net.HardwareAddr) (string, error) {
	if mac.String() != victimMAC.String() {
		return "", fault.Errorf(fault.NotFound, "no boot config for %s", mac)
	}
	return victimNode, nil
}

func (s specs) BootNode(ctx context.Context, mac net.HardwareAddr) (string, error) {
	n, err := s.node(mac)
	if err != nil {
		return "", err
	}
	return n, s.gate.Allow(ctx, n)
}

func (s specs) BootSpec(ctx context.Context, mac net.HardwareAddr) (ipxe.Spec, error) {
	n, err := s.BootNode(ctx, mac)
	if err != nil {
		return ipxe.Spec{}, err
	}
	return victimSpec(n), nil
}

// victimSpec is the boot spec of the victim node n: its disk, target,
// initiator name and CHAP secret.
func victimSpec(n string) ipxe.Spec {
	return ipxe.Spec{Node: n, Disk: "disk1", Portal: "10.199.0.1", TargetIQN: targetIQN, InitiatorIQN: nodeIQN,
		CHAP: &ipxe.CHAP{User: "node-01", Secret: logging.Secret(secret)}}
}

// memVolume is a 1 MiB disk in memory.
type memVolume struct {
	mu sync.Mutex
	b  []byte
}

func (m *memVolume) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(p, m.b[off:]), nil
}

func (m *memVolume) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(m.b[off:], p), nil
}
func (m *memVolume) Size() uint64              { return uint64(len(m.b)) }
func (m *memVolume) Flush() error              { return nil }
func (m *memVolume) Discard(_, _ uint64) error { return nil }
func (m *memVolume) Close() error              { return nil }

const udhcpcScript = `#!/bin/sh
env | grep -E "^(ip|bootfile|mask)=" | sort > "$OUT/$1.env"
if [ "$1" = bound ]; then ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface"; fi
exit 0
`

type site struct {
	p      *netnstest.Pair
	dir    string
	db     *store.DB
	hil    *hil.Client
	attack []string // what was tried and how it ended, for the log
}

func (s *site) note(t *testing.T, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	s.attack = append(s.attack, line)
	t.Log("attack: " + line)
}

func start(t *testing.T) *site {
	testenv.RequireCommand(t, "udhcpc", "udhcpc")
	testenv.RequireCommand(t, "curl", "curl")
	testenv.RequireCommand(t, "iscsi-inq", "libiscsi-bin")
	p := netnstest.New(t)
	s := &site{p: p, dir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(s.dir, "script"), []byte(udhcpcScript), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := logging.Discard()
	if testing.Verbose() {
		log, _ = logging.New(os.Stderr, logging.Options{Format: "text", Level: "info"})
	}

	// HIL (on loopback, in the test's own namespace): power states.
	hm, err := hilmock.New(ctx, filepath.Join(s.dir, "hil.db"), hilmock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := hilmock.ReadInventory(filepath.Join(testenv.RepoRoot(), "configs", "hil-mock.example.yaml"))
	if err == nil {
		_, err = hm.Seed(ctx, inv)
	}
	if err != nil {
		t.Fatal(err)
	}
	hdone := make(chan error, 1)
	go func() { hdone <- hm.Serve(ctx) }()
	s.hil = hil.New(hm.URL(), &http.Client{Timeout: 5 * time.Second})

	if s.db, err = store.Open(ctx, filepath.Join(s.dir, "bmi.db"), log); err != nil {
		t.Fatal(err)
	}
	record := func(ctx context.Context, e api.AuditEntry) {
		if err := s.db.AppendAudit(ctx, store.AuditEntry{Kind: e.Kind, Actor: e.Actor, Source: e.Source,
			Action: e.Action, Object: e.Object, Outcome: e.Outcome, Detail: e.Detail}); err != nil {
			t.Errorf("audit: %v", err)
		}
	}

	sp := specs{gate: guard.NewPowerGate(s.hil, bmiCred, time.Second, log)}
	tokens := ipxe.NewTokens(nil)
	d := &dhcpd.Server{Interfaces: []string{p.Server.Iface},
		Pool: dhcpd.Pool{Start: net.IPv4(10, 199, 0, 100), End: net.IPv4(10, 199, 0, 120), Netmask: net.CIDRMask(24, 32),
			LeaseTime: 10 * time.Minute},
		BaseURL: "http://10.199.0.1:8081", Nodes: sp, Leases: dhcpd.NewMemoryLeases(), Tokens: tokens, Log: log.With("svc", "dhcp")}
	r, err := ipxe.NewRenderer(ipxe.OptionsFromConfig(config.Default().Boot.IPXE))
	if err != nil {
		t.Fatal(err)
	}
	boot := &ipxe.Server{Addr: "10.199.0.1:8081", Log: log, Handler: &ipxe.Handler{Specs: sp, Renderer: r, Log: log.With("svc", "ipxe"),
		Clients: d, RequireLease: true, Tokens: tokens}}
	logins := &guard.Logins{Fails: guard.New(time.Minute, 10, nil), Record: record}
	tg, err := iscsi.New(iscsi.Config{Listen: []string{"10.199.0.1:3260"}, RequireCHAP: true, Guard: logins}, log.With("svc", "iscsi"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Export(ctx, iscsi.Export{IQN: targetIQN, Volume: &memVolume{b: make([]byte, 1<<20)},
		CHAP: &iscsi.CHAP{User: "node-01", Secret: secret}}); err != nil {
		t.Fatal(err)
	}
	if err := tg.SetInitiators(ctx, targetIQN, []string{nodeIQN}); err != nil {
		t.Fatal(err)
	}
	errs := []<-chan error{
		p.Server.Go(func() error { return d.Serve(ctx) }),
		p.Server.Go(func() error { return boot.Serve(ctx) }),
		p.Server.Go(func() error { return tg.Serve(ctx) }),
	}
	t.Cleanup(func() {
		cancel()
		for _, e := range errs {
			if err := <-e; err != nil {
				t.Errorf("server: %v", err)
			}
		}
		tg.Close()
		<-hdone
		hm.Close()
		s.db.Close()
		t.Log("attacks tried:\n  " + strings.Join(s.attack, "\n  "))
	})
	// Wait for the boot listener.
	for i := 0; ; i++ {
		if out, _ := s.curl(t, "/boot/ipxe.efi"); out != "" || i > 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// run runs a command in the attacker's namespace.
func (s *site) run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := s.p.Client.Command(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// curl fetches a path of the boot listener from the attacker; it
// returns the HTTP status line's code and the body.
func (s *site) curl(t *testing.T, path string) (string, string) {
	t.Helper()
	out, _ := s.run(t, "curl", "-s", "-m", "5", "-w", "\n%{http_code}", "http://10.199.0.1:8081"+path)
	i := strings.LastIndex(out, "\n")
	if i < 0 {
		return "", out
	}
	return out[i+1:], out[:i]
}

func (s *site) setMAC(t *testing.T, mac string) {
	t.Helper()
	for _, args := range [][]string{{"link", "set", "dev", s.p.Client.Iface, "down"},
		{"link", "set", "dev", s.p.Client.Iface, "address", mac}, {"link", "set", "dev", s.p.Client.Iface, "up"}} {
		if out, err := s.run(t, "ip", args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
}

func (s *site) setIP(t *testing.T, ip string) {
	t.Helper()
	if out, err := s.run(t, "ip", "addr", "flush", "dev", s.p.Client.Iface); err != nil {
		t.Fatalf("ip addr flush: %v: %s", err, out)
	}
	if out, err := s.run(t, "ip", "addr", "add", ip+"/24", "dev", s.p.Client.Iface); err != nil {
		t.Fatalf("ip addr add: %v: %s", err, out)
	}
}

// udhcpcIPXE asks for a lease as iPXE does (user class iPXE); it returns
// the bound event's environment, nil without a lease.
func (s *site) udhcpcIPXE(t *testing.T) map[string]string {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := s.p.Client.Command(ctx, "udhcpc", "-f", "-q", "-n", "-t", "3", "-T", "1", "-i", s.p.Client.Iface,
		"-s", filepath.Join(s.dir, "script"), "-x", "0x4d:69505845")
	cmd.Env = append(cmd.Env, "OUT="+out)
	_ = cmd.Run()
	b, err := os.ReadFile(filepath.Join(out, "bound.env"))
	if err != nil {
		return nil
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m
}

func (s *site) power(t *testing.T, on bool) {
	t.Helper()
	var err error
	if on {
		err = s.hil.PowerOn(context.Background(), aliceCred, victimNode)
	} else {
		err = s.hil.PowerOff(context.Background(), aliceCred, victimNode)
	}
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the gate trusts an "on" for 1 s
}

func iscsiURL(user, pw string) string {
	return "iscsi://" + user + "%" + pw + "@10.199.0.1:3260/" + targetIQN + "/0"
}

// TestAttacker runs every attack of issue 28 from a host on the
// provisioning network that is not the node.
func TestAttacker(t *testing.T) {
	s := start(t)
	victimPath := "/boot/" + strings.ReplaceAll(victimMAC.String(), ":", "-") + ".ipxe"

	// 1. The node is powered on (booting somewhere). The attacker, with
	// its own MAC and a static address, asks for scripts by MAC, by name,
	// and for the API.
	s.power(t, true)
	s.setMAC(t, "02:00:00:00:66:66")
	if env := s.udhcpcIPXE(t); env != nil {
		t.Fatalf("DHCP answered a MAC without a boot config: %v", env)
	}
	s.note(t, "DHCP as iPXE from a MAC without a boot config: no answer")
	s.setIP(t, "10.199.0.66")
	for _, path := range []string{victimPath, victimPath + "?token=" + strings.Repeat("0", 32), victimPath + "?token=",
		"/boot/52:54:00:00:01:01.ipxe", "/boot/node/node-01.ipxe", "/boot/node/node-01", "/boot/../boot/52-54-00-00-01-01.ipxe",
		"/api/v1/projects", "/metrics", "/boot/52-54-00-00-01-01.ipxe%00", "/boot/5254.0000.0101.ipxe"} {
		code, body := s.curl(t, path)
		if strings.Contains(body, secret) || code == "200" && strings.Contains(body, "sanboot") {
			t.Fatalf("GET %s from a stranger = %s with the script:\n%s", path, code, body)
		}
		if code == "200" && !strings.Contains(body, "BMI-NO-BOOT-CONFIG") || code == "" {
			t.Fatalf("GET %s from a stranger = %q %q, want a refusal or the no-boot-config script", path, code, body)
		}
		s.note(t, "GET %s from 10.199.0.66 (no lease): HTTP %s, no secret", path, code)
	}

	// 2. The victim's MAC while the victim is powered off.
	s.power(t, false)
	s.setMAC(t, victimMAC.String())
	if env := s.udhcpcIPXE(t); env != nil {
		t.Fatalf("DHCP leased the powered-off node's MAC to the attacker: %v", env)
	}
	s.note(t, "stolen MAC of a powered-off node, DHCP as iPXE: no lease (HIL power gate)")
	s.setIP(t, "10.199.0.67")
	if code, body := s.curl(t, victimPath); strings.Contains(body, secret) {
		t.Fatalf("script of a powered-off node to its MAC's thief: %s\n%s", code, body)
	} else {
		s.note(t, "stolen MAC of a powered-off node, GET its script: HTTP %s, no secret", code)
	}

	// 3. The node boots (powered on; here the test plays the node): the
	// script's URL carries a one-time token that a replay cannot use.
	s.power(t, true)
	env := s.udhcpcIPXE(t)
	if env == nil || !strings.Contains(env["bootfile"], "?token=") {
		t.Fatalf("the node got no lease with a tokened script URL: %v", env)
	}
	url := env["bootfile"]
	path := url[strings.Index(url, "/boot/"):]
	code, body := s.curl(t, path)
	if code != "200" || !strings.Contains(body, secret) || !strings.Contains(body, "set initiator-iqn "+nodeIQN) {
		t.Fatalf("the node's own script: %s\n%s", code, body)
	}
	if code, body := s.curl(t, path); code != "403" || strings.Contains(body, secret) {
		t.Fatalf("replayed token: %s\n%s", code, body)
	}
	s.note(t, "replay of the node's script URL (token used once): HTTP 403")
	s.setIP(t, "10.199.0.68")
	if code, body := s.curl(t, victimPath+"?token="+strings.Repeat("a", 32)); code != "403" || strings.Contains(body, secret) {
		t.Fatalf("a forged token from another address: %s", code)
	}
	s.note(t, "forged token from an address without the lease: HTTP 403")

	// 4. The stolen secret under another initiator name.
	for _, name := range []string{"not-an-iqn", "iqn.2026-11.org.attacker:box", "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test"} {
		if out, err := s.run(t, "iscsi-inq", "-i", name, iscsiURL("node-01", secret)); err == nil {
			t.Fatalf("login with the stolen secret as %q succeeded:\n%s", name, out)
		}
		s.note(t, "iSCSI login with the stolen secret as initiator %q: refused (ACL)", name)
	}
	if out, _ := s.run(t, "iscsi-ls", "-i", "iqn.2026-11.org.attacker:box", "iscsi://node-01%"+secret+"@10.199.0.1:3260"); strings.Contains(out, targetIQN) {
		t.Fatalf("discovery with the stolen secret under another name lists the target:\n%s", out)
	}
	s.note(t, "iSCSI discovery with the stolen secret under another name: target not listed")

	// 5. 20 bad CHAP logins under the node's own (stolen) name: the
	// source is throttled (even with the right secret), and the real
	// node, whose name the attacker used, still logs in.
	var refused, throttled int
	for i := 0; i < 20; i++ {
		out, err := s.run(t, "iscsi-inq", "-i", nodeIQN, iscsiURL("node-01", fmt.Sprintf("guess-%02d-xxxxxxx", i)))
		if err == nil {
			t.Fatalf("bad CHAP login %d succeeded:\n%s", i, out)
		}
	}
	if out, err := s.run(t, "iscsi-inq", "-i", nodeIQN, iscsiURL("node-01", secret)); err == nil {
		t.Fatalf("the throttled source logged in with the right name and secret:\n%s", out)
	}
	s.note(t, "20 bad CHAP logins from 10.199.0.68, then the right name and secret from there: refused (throttled)")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := s.p.Server.Command(ctx, "iscsi-inq", "-i", nodeIQN, iscsiURL("node-01", secret)).CombinedOutput(); err != nil {
		t.Fatalf("the real node (10.199.0.1) could not log in while the attacker is throttled: %v\n%s", err, out)
	}
	s.note(t, "the real node logs in from 10.199.0.1 meanwhile: ok")

	// 6. The audit log has every attempt (the target records a login
	// just after it answered it: wait a moment for the last).
	var ok int
	var es []store.AuditEntry
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		es, err = s.db.Audit(context.Background(), store.AuditFilter{Kind: "iscsi", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		refused, throttled, ok = 0, 0, 0
		for _, e := range es {
			switch {
			case e.Source == "10.199.0.68" && e.Outcome == "refused":
				refused++
			case e.Source == "10.199.0.68" && e.Outcome == "throttled":
				throttled++
			case e.Source == "10.199.0.1" && e.Outcome == "ok" && e.Actor == nodeIQN:
				ok++
			}
		}
		if refused+throttled == 25 && ok == 1 || time.Now().After(end) {
			break
		}
	}
	// 3 ACL refusals, 1 discovery and 6 CHAP failures empty the source's
	// bucket (10); the other 14 guesses and the right secret are throttled.
	if refused+throttled != 25 || throttled < 10 || ok != 1 {
		t.Fatalf("audit: %d refused + %d throttled from the attacker (want 25 in all, >= 10 throttled), %d ok from the node:\n%+v",
			refused, throttled, ok, es)
	}
	s.note(t, "audit log: %d refused and %d throttled logins from the attacker, 1 ok from the node", refused, throttled)
}
