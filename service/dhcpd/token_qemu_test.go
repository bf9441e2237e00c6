package dhcpd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/ipxe"
	"github.com/bmi-go/bmi/service/logging"
)

// TestQEMUIPXEScriptToken boots QEMU's own iPXE ROM with the script
// protections of bmid's defaults (lease holder only, one-time token in the
// DHCP answer's URL) and without them, and compares the time from the
// node's first DHCP DISCOVER to its script being served: the token costs
// no round trip (it travels in the DHCP answer iPXE asks for anyway), so
// the two must be within noise of each other.
func TestQEMUIPXEScriptToken(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs")
	}
	p, tap := vmSite(t, "bmitap1")
	r, err := ipxe.NewRenderer(ipxe.Options{Attempts: 1, FirstDelay: 1, RebootDelay: 0, NoConfigPause: 0})
	if err != nil {
		t.Fatal(err)
	}
	boot1 := func(t *testing.T, secure bool) time.Duration {
		tl := boot.NewTimeline()
		log := logging.Discard()
		ctx, cancel := context.WithCancel(context.Background())
		d := vmDHCP(tap, tl, log)
		h := &ipxe.Handler{Specs: qemuNodes{}, Renderer: r, Log: log, Recorder: tl}
		if secure {
			h.Tokens, h.RequireLease, h.Clients = ipxe.NewTokens(nil), true, d
			d.Tokens = h.Tokens
		}
		hs := &ipxe.Server{Addr: "10.199.1.1:8080", Log: log, Handler: h}
		errs := []<-chan error{
			p.Server.Go(func() error { return d.Serve(ctx) }),
			p.Server.Go(func() error { return hs.Serve(ctx) }),
		}
		defer func() {
			cancel()
			for _, e := range errs {
				if err := <-e; err != nil {
					t.Errorf("server: %v", err)
				}
			}
		}()
		flat, _ := runQEMU(t, p, tap, nodeMAC, "BMI: sanboot attempt 1 of 1")
		if !strings.Contains(flat, "BMI: node node1 boots disk disk1") {
			t.Fatalf("the node did not get its script (secure=%v)", secure)
		}
		var disc, script time.Time
		for _, ev := range tl.Events(nodeMAC) {
			switch {
			case ev.Step == boot.StepDiscover && disc.IsZero():
				disc = ev.At
			case ev.Step == boot.StepScript:
				script = ev.At
				if secure && !strings.Contains(ev.Detail, "/boot/52-54-00-77-00-01.ipxe") {
					t.Errorf("script event %q", ev.Detail)
				}
			}
		}
		if disc.IsZero() || script.IsZero() {
			t.Fatalf("timeline lacks DISCOVER or script: %+v", tl.Events(nodeMAC))
		}
		return script.Sub(disc)
	}
	var plain, secure []time.Duration
	for i := 0; i < 3; i++ {
		plain = append(plain, boot1(t, false))
		secure = append(secure, boot1(t, true))
	}
	t.Logf("first DHCP DISCOVER to script served (QEMU TCG, iPXE ROM): without lease+token checks %v, with them %v", plain, secure)
}
