package attacktest

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/netnstest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/guard"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/service/ipxe"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

// netSpecs is the victim's boot config behind one network's gate and the
// power gate, as bmid's per-network bootSpecs are.
type netSpecs struct {
	net   *guard.NetworkGate
	power *guard.PowerGate
}

func (s netSpecs) BootNode(ctx context.Context, mac net.HardwareAddr) (string, error) {
	if mac.String() != victimMAC.String() {
		return "", fault.Errorf(fault.NotFound, "no boot config for %s", mac)
	}
	if err := s.net.Allow(ctx, victimNode, "tenant-a", mac.String()); err != nil {
		return "", err
	}
	return victimNode, s.power.Allow(ctx, victimNode)
}

func (s netSpecs) BootSpec(ctx context.Context, mac net.HardwareAddr) (ipxe.Spec, error) {
	n, err := s.BootNode(ctx, mac)
	if err != nil {
		return ipxe.Spec{}, err
	}
	return victimSpec(n), nil
}

// provLink is one provisioning network: its own link (server and
// attacker namespaces), DHCP server and boot HTTP listener.
type provLink struct {
	name string
	p    *netnstest.Pair
	site *site // the attacker's helpers, on this link
}

// TestAttackerOtherProjectNetwork: per-project provisioning networks.
// Project tenant-a has network prov-a, tenant-b prov-b; each is served on
// its own link by its own DHCP server and boot HTTP listener (one lease
// table, as in bmid). A machine on tenant-b's network that takes the MAC
// of tenant-a's powered-on node gets no lease and no script (real udhcpc
// and curl), and the refusal is in the audit log; the same machine on
// tenant-a's network still can (the race that remains, within a project).
func TestAttackerOtherProjectNetwork(t *testing.T) {
	testenv.RequireCommand(t, "udhcpc", "udhcpc")
	testenv.RequireCommand(t, "curl", "curl")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "script"), []byte(udhcpcScript), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := logging.Discard()
	if testing.Verbose() {
		log, _ = logging.New(os.Stderr, logging.Options{Format: "text", Level: "info"})
	}
	hm, err := hilmock.New(ctx, filepath.Join(dir, "hil.db"), hilmock.Options{})
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
	hc := hil.New(hm.URL(), &http.Client{Timeout: 5 * time.Second})
	db, err := store.Open(ctx, filepath.Join(dir, "bmi.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	for p, n := range map[string]string{"tenant-a": "prov-a", "tenant-b": "prov-b"} {
		if _, err := db.ClaimProjectNetwork(ctx, p, []string{n}); err != nil {
			t.Fatal(err)
		}
	}
	power := guard.NewPowerGate(hc, bmiCred, time.Second, log)
	leases, tokens := dhcpd.NewMemoryLeases(), ipxe.NewTokens(nil)
	r, err := ipxe.NewRenderer(ipxe.OptionsFromConfig(config.Default().Boot.IPXE))
	if err != nil {
		t.Fatal(err)
	}
	var errs []<-chan error
	links := map[string]*provLink{}
	for i, name := range []string{"prov-a", "prov-b"} {
		p := netnstest.New(t)
		gate := &guard.NetworkGate{Network: name, NetworkOf: db.ProjectNetwork,
			Refused: func(ctx context.Context, node, project, mac, has string) {
				if err := db.AppendAudit(ctx, store.AuditEntry{Kind: "boot", Actor: mac, Source: "network " + name,
					Action: "boot node " + node, Object: project, Outcome: "refused", Detail: "project's network: " + has}); err != nil {
					t.Errorf("audit: %v", err)
				}
			}}
		sp := netSpecs{net: gate, power: power}
		first := byte(100 + 30*i) // one lease table: the pools must not overlap
		d := &dhcpd.Server{Interfaces: []string{p.Server.Iface},
			Pool: dhcpd.Pool{Start: net.IPv4(10, 199, 0, first), End: net.IPv4(10, 199, 0, first+20), Netmask: net.CIDRMask(24, 32),
				LeaseTime: 10 * time.Minute},
			BaseURL: "http://10.199.0.1:8081", Nodes: sp, Leases: leases, Tokens: tokens, Log: log.With("net", name)}
		boot := &ipxe.Server{Addr: "10.199.0.1:8081", Log: log, Handler: &ipxe.Handler{Specs: sp, Renderer: r, Log: log.With("net", name),
			Clients: d, RequireLease: true, Tokens: tokens}}
		errs = append(errs, p.Server.Go(func() error { return d.Serve(ctx) }), p.Server.Go(func() error { return boot.Serve(ctx) }))
		links[name] = &provLink{name: name, p: p, site: &site{p: p, dir: dir}}
	}
	t.Cleanup(func() {
		cancel()
		for _, e := range errs {
			if err := <-e; err != nil {
				t.Errorf("server: %v", err)
			}
		}
		<-hdone
		hm.Close()
		db.Close()
		for _, l := range links {
			t.Log("attacks tried on " + l.name + ":\n  " + strings.Join(l.site.attack, "\n  "))
		}
	})
	for _, l := range links {
		for i := 0; ; i++ {
			if code, _ := l.site.curl(t, "/boot/ipxe.efi"); code != "" && code != "000" || i > 50 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	victimPath := "/boot/" + strings.ReplaceAll(victimMAC.String(), ":", "-") + ".ipxe"

	// tenant-a's node is powered on, so the power gate lets its MAC boot.
	if err := hc.PowerOn(ctx, aliceCred, victimNode); err != nil {
		t.Fatal(err)
	}
	b := links["prov-b"].site
	b.setMAC(t, victimMAC.String())
	if env := b.udhcpcIPXE(t); env != nil {
		t.Fatalf("on tenant-b's network, the MAC of tenant-a's powered-on node got a lease: %v", env)
	}
	b.note(t, "on tenant-b's network, the MAC of tenant-a's powered-on node, DHCP as iPXE: no lease")
	b.setIP(t, "10.199.0.66")
	for _, path := range []string{victimPath, victimPath + "?token=" + strings.Repeat("0", 32)} {
		code, body := b.curl(t, path)
		if strings.Contains(body, secret) || strings.Contains(body, "sanboot") || code == "" {
			t.Fatalf("on tenant-b's network, GET %s with tenant-a's node's MAC = %s:\n%s", path, code, body)
		}
		b.note(t, "on tenant-b's network, GET %s: HTTP %s, no script, no secret", path, code)
	}
	es, err := db.Audit(ctx, store.AuditFilter{Kind: "boot", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	for _, e := range es {
		if e.Outcome == "refused" && e.Actor == victimMAC.String() && e.Source == "network prov-b" && e.Object == "tenant-a" {
			seen++
		}
	}
	if seen == 0 {
		t.Fatalf("audit log has no refusal of tenant-a's node on prov-b: %+v", es)
	}
	b.note(t, "audit log: %d refusals of node-01 (tenant-a) on network prov-b", seen)

	// The same machine on tenant-a's own network: the race within a
	// project remains (a machine of tenant-a can take its own project's
	// powered-on node's MAC). This also shows the gate is not refusing
	// everything.
	a := links["prov-a"].site
	a.setMAC(t, victimMAC.String())
	env := a.udhcpcIPXE(t)
	if env == nil || !strings.Contains(env["bootfile"], "?token=") {
		t.Fatalf("on tenant-a's network the node's MAC got no lease with a tokened script URL: %v", env)
	}
	url := env["bootfile"]
	code, body := a.curl(t, url[strings.Index(url, "/boot/"):])
	if code != "200" || !strings.Contains(body, secret) {
		t.Fatalf("on tenant-a's network the node's MAC got no script: %s\n%s", code, body)
	}
	a.note(t, "on tenant-a's own network, the same MAC: lease %s and the script (the race within one project remains)", env["ip"])
}
