package store

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/core"
)

func TestBootEvents(t *testing.T) { eachEngine(t, testBootEvents) }

// testBootEvents: a node's boot timeline is stored for a MAC with a boot
// config only, read back oldest first whichever handle (gateway) wrote
// it, with URL queries redacted, cut to the newest MaxBootEvents, and
// deleted with the boot config, so the node's next project starts empty.
func testBootEvents(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	other := d.open(t) // a second gateway on the same database
	if _, err := s.CreateProject(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	im, err := s.InsertImage(ctx, core.Image{Project: "p", Name: "n1", Kind: core.KindDisk, State: core.StateReady}, "u1")
	if err != nil {
		t.Fatal(err)
	}
	known, _ := net.ParseMAC("52:54:00:00:00:01")
	stranger, _ := net.ParseMAC("52:54:00:00:00:99")
	bootCfg := core.BootConfig{Node: "n1", Project: "p", NIC: "eth0", MAC: known.String(), DiskID: im.ID}
	if err := s.PutBoot(ctx, bootCfg); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0).UTC()
	ev := func(mac net.HardwareAddr, step boot.Step, sec int, detail string) boot.Event {
		return boot.Event{MAC: mac, Step: step, At: t0.Add(time.Duration(sec) * time.Second), Detail: detail}
	}
	// Gateway 2 records the logins after gateway 1 recorded DHCP and the
	// script, but one of its events happened earlier.
	n, err := s.AppendBootEvents(ctx, []boot.Event{ev(known, boot.StepDiscover, 0, ""), ev(stranger, boot.StepDiscover, 0, ""),
		ev(known, boot.StepScript, 2, "http://10.0.0.1/boot/x.ipxe?token=secret")})
	if err != nil || n != 2 {
		t.Fatalf("append = %d, %v; want 2 stored (the stranger's event dropped)", n, err)
	}
	login := ev(known, boot.StepLogin, 3, "target iqn.x")
	login.Client, login.Remote, login.Initiator, login.Session = boot.ClientIPXE, "10.0.0.5", "iqn.init", "40002723abcd"
	if n, err := other.AppendBootEvents(ctx, []boot.Event{login, ev(known, boot.StepAck, 1, "")}); err != nil || n != 2 {
		t.Fatalf("append through the other gateway = %d, %v", n, err)
	}
	got, err := s.BootEvents(ctx, known)
	if err != nil {
		t.Fatal(err)
	}
	want := []boot.Step{boot.StepDiscover, boot.StepAck, boot.StepScript, boot.StepLogin}
	if len(got) != len(want) {
		t.Fatalf("timeline = %+v, want steps %v", got, want)
	}
	for i, st := range want {
		if got[i].Step != st || !got[i].At.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Errorf("event %d = %s at %v, want %s at +%ds", i, got[i].Step, got[i].At, st, i)
		}
	}
	if got[2].Detail != "http://10.0.0.1/boot/x.ipxe?…" {
		t.Errorf("script detail = %q, want its query redacted", got[2].Detail)
	}
	if l := got[3]; l.Client != login.Client || l.Remote != login.Remote || l.Initiator != login.Initiator || l.Session != login.Session ||
		l.MAC.String() != known.String() {
		t.Errorf("login read back = %+v, want %+v", l, login)
	}
	if evs, err := s.BootEvents(ctx, stranger); err != nil || len(evs) != 0 {
		t.Errorf("stranger's timeline = %+v, %v; want none", evs, err)
	}

	// The newest MaxBootEvents are kept.
	var many []boot.Event
	for i := 0; i < MaxBootEvents+10; i++ {
		many = append(many, ev(known, boot.StepDiscover, 10+i, ""))
	}
	if _, err := s.AppendBootEvents(ctx, many); err != nil {
		t.Fatal(err)
	}
	got, err = other.BootEvents(ctx, known)
	if err != nil || len(got) != MaxBootEvents || !got[0].At.Equal(many[10].At) || !got[MaxBootEvents-1].At.Equal(many[len(many)-1].At) {
		t.Fatalf("after %d more events: %d kept (%v), first %v last %v; want the newest %d", len(many), len(got), err,
			first(got).At, last(got).At, MaxBootEvents)
	}

	// Deprovisioned, the node's timeline goes with its boot config.
	if err := s.DeleteBoot(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBoot(ctx, bootCfg); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.BootEvents(ctx, known); err != nil || len(evs) != 0 {
		t.Fatalf("timeline after the boot config was deleted and made again = %d events, %v; want none", len(evs), err)
	}
}

func first(evs []boot.Event) boot.Event {
	if len(evs) == 0 {
		return boot.Event{}
	}
	return evs[0]
}

func last(evs []boot.Event) boot.Event {
	if len(evs) == 0 {
		return boot.Event{}
	}
	return evs[len(evs)-1]
}
