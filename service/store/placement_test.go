package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

func groupGateway(t *testing.T, s *DB, id, group, portal string, ago time.Duration) *Gateway {
	t.Helper()
	g, err := NewGateway(s, id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	g.Group, g.Portal, g.CephClient = group, portal, "127.0.0.1:0/"+id
	if ago > 0 {
		g.Now = func() time.Time { return time.Now().Add(-ago) }
	}
	if err := g.Join(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.Now = nil
	return g
}

// TestPlacement: disks are placed on the live gateways of the placer's
// group, balanced by count (never on a dead gateway or another group's);
// two placers of one disk at once agree; the owner alone marks it
// exported; a move is handed over by the owner; a take-over moves a dead
// gateway's disks to the claimer, and returns its Ceph client to fence.
func TestPlacement(t *testing.T) { eachEngine(t, testPlacement) }

func testPlacement(t *testing.T, d testDB) {
	ctx := context.Background()
	a := groupGateway(t, d.open(t), "gw-a", "rack1", "10.0.0.10:3260", 0)
	b := groupGateway(t, d.open(t), "gw-b", "rack1", "10.0.0.10:3260", 0)
	groupGateway(t, d.open(t), "gw-x", "rack2", "10.0.1.10:3260", 0)
	groupGateway(t, d.open(t), "gw-dead", "rack1", "10.0.0.10:3260", 2*time.Minute)
	count := map[string]int{}
	for i := range 10 {
		g := []*Gateway{a, b}[i%3%2] // a places more than b
		p, err := g.Place(ctx, fmt.Sprintf("iqn.t:%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if p.Group != "rack1" || p.Want != WantExport || p.ExportedAt != 0 {
			t.Fatalf("placement %+v", p)
		}
		count[p.Gateway]++
	}
	if count["gw-a"] != 5 || count["gw-b"] != 5 || len(count) != 2 {
		t.Fatalf("10 disks placed %v; want 5 on gw-a and 5 on gw-b (none on the dead gateway or rack2's)", count)
	}
	// Placing a placed disk again returns where it is.
	p0, _ := a.Placement(ctx, "iqn.t:0")
	if p, err := b.Place(ctx, "iqn.t:0"); err != nil || p.Gateway != p0.Gateway {
		t.Fatalf("placing iqn.t:0 again: %+v, %v; want it on %s", p, err, p0.Gateway)
	}
	// Two placers at once agree.
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := []*Gateway{a, b}[i%2].Place(ctx, "iqn.t:race")
			if err != nil {
				t.Error(err)
			}
			got[i] = p.Gateway
		}()
	}
	wg.Wait()
	for _, g := range got {
		if g != got[0] {
			t.Fatalf("placers at once disagree: %v", got)
		}
	}
	// Only the owner marks a disk exported.
	other := map[string]*Gateway{"gw-a": b, "gw-b": a}[p0.Gateway]
	owner := map[string]*Gateway{"gw-a": a, "gw-b": b}[p0.Gateway]
	if ok, err := other.MarkExported(ctx, "iqn.t:0"); ok || err != nil {
		t.Fatalf("a gateway marks another's disk exported: %v, %v", ok, err)
	}
	if ok, err := owner.MarkExported(ctx, "iqn.t:0"); !ok || err != nil {
		t.Fatalf("the owner marks its disk exported: %v, %v", ok, err)
	}
	// Asking the owner to apply the ACL again: only another gateway asks.
	if asked, err := owner.RequestACL(ctx, "iqn.t:0"); asked || err != nil {
		t.Fatalf("the owner asks itself to apply the ACL: %v, %v", asked, err)
	}
	if asked, err := other.RequestACL(ctx, "iqn.t:0"); !asked || err != nil {
		t.Fatalf("another gateway asks for the ACL: %v, %v", asked, err)
	}
	if p, _ := a.Placement(ctx, "iqn.t:0"); p.ExportedAt != 0 {
		t.Fatalf("after the request: %+v; want exported_at 0 until the owner marks it", p)
	}
	if ok, err := owner.MarkExported(ctx, "iqn.t:0"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// A move is to a live gateway of the group, handed over by the owner.
	if err := owner.Move(ctx, "iqn.t:0", "gw-x"); fault.Of(err) != fault.Invalid || !strings.Contains(err.Error(), `in group "rack2"`) {
		t.Fatalf("move to another group: %v", err)
	}
	if err := owner.Move(ctx, "iqn.t:0", "gw-dead"); fault.Of(err) != fault.Invalid {
		t.Fatalf("move to a dead gateway: %v", err)
	}
	if err := other.Move(ctx, "iqn.t:0", other.ID()); err != nil {
		t.Fatal(err)
	}
	if err := other.HandOver(ctx, "iqn.t:0"); err != nil {
		t.Fatal(err)
	}
	if p, _ := a.Placement(ctx, "iqn.t:0"); p.Gateway != owner.ID() || p.MoveTo != other.ID() {
		t.Fatalf("a gateway that does not own the disk handed it over: %+v", p)
	}
	if err := owner.HandOver(ctx, "iqn.t:0"); err != nil {
		t.Fatal(err)
	}
	if p, _ := a.Placement(ctx, "iqn.t:0"); p.Gateway != other.ID() || p.MoveTo != "" || p.ExportedAt != 0 {
		t.Fatalf("after the hand-over: %+v", p)
	}
	// Unexport: asked by anyone, the row deleted by the owner only.
	if err := owner.RequestUnexport(ctx, "iqn.t:0"); err != nil {
		t.Fatal(err)
	}
	if err := owner.Unplace(ctx, "iqn.t:0"); err != nil {
		t.Fatal(err)
	}
	if p, err := a.Placement(ctx, "iqn.t:0"); err != nil || p.Want != WantUnexport {
		t.Fatalf("after a request and a non-owner's Unplace: %+v, %v", p, err)
	}
	if err := other.Unplace(ctx, "iqn.t:0"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Placement(ctx, "iqn.t:0"); fault.Of(err) != fault.NotFound {
		t.Fatalf("after the owner's Unplace: %v", err)
	}
	// A gateway whose portal differs from its group's is refused.
	g, err := NewGateway(d.open(t), "gw-c", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	g.Group, g.Portal = "rack1", "10.0.0.99:3260"
	if err := g.Join(ctx); fault.Of(err) != fault.Invalid || !strings.Contains(err.Error(), "10.0.0.10:3260") {
		t.Fatalf("a gateway with another portal joins its group: %v", err)
	}
	// Take-over: a's disks move to b; rack2's gateway never claims rack1's.
	a.Now = func() time.Time { return time.Now().Add(-2 * time.Minute) }
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	x, err := NewGateway(d.open(t), "gw-x2", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	x.Group = "rack2"
	if err := x.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := x.ClaimExpired(ctx); err != nil || len(got) != 0 {
		t.Fatalf("rack2 claims %v, %v; want none of rack1's", got, err)
	}
	deadGWs, err := b.ClaimExpiredGateways(ctx)
	if err != nil || len(deadGWs) != 2 || deadGWs[0] != (DeadGateway{"gw-a", "127.0.0.1:0/gw-a"}) || deadGWs[1].ID != "gw-dead" {
		t.Fatalf("b claims %+v, %v; want gw-a and gw-dead with their Ceph clients", deadGWs, err)
	}
	ps, err := b.Placements(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Gateway != "gw-b" {
			t.Fatalf("after b took gw-a over: %+v; want every disk on gw-b", p)
		}
	}
}

// TestLocate: where a disk is served is its owner's own address (from
// the owner's gateways row) and whether the owner's lease lasts; a disk
// placed nowhere is not found.
func TestLocate(t *testing.T) { eachEngine(t, testLocate) }

func testLocate(t *testing.T, d testDB) {
	ctx := context.Background()
	a, err := NewGateway(d.open(t), "gw-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	a.Group, a.Portal, a.Addresses = "rack1", "10.0.0.10:3260", []string{"10.0.0.11:3260", "10.0.2.11:3260"}
	if err := a.Join(ctx); err != nil {
		t.Fatal(err)
	}
	b := groupGateway(t, d.open(t), "gw-b", "rack1", "10.0.0.10:3260", 0)
	if l, err := a.Locate(ctx, "iqn.l:0"); fault.Of(err) != fault.NotFound {
		t.Fatalf("locate before any placement: %+v, %v", l, err)
	}
	if _, err := a.Place(ctx, "iqn.l:1"); err != nil {
		t.Fatal(err)
	}
	l, err := b.Locate(ctx, "iqn.l:1")
	if err != nil || l.Gateway != "gw-a" || !slices.Equal(l.Addresses, []string{"10.0.0.11:3260", "10.0.2.11:3260"}) || !l.Live || l.Want != WantExport {
		t.Fatalf("locate a disk placed on a live gw-a: %+v, %v", l, err)
	}
	if _, err := b.Locate(ctx, "iqn.l:2"); fault.Of(err) != fault.NotFound {
		t.Fatalf("locate a disk placed nowhere: %v", err)
	}
	// Every placement of the group at once, none of another group's.
	c := groupGateway(t, d.open(t), "gw-c", "rack2", "10.0.1.10:3260", 0)
	if _, err := c.Place(ctx, "iqn.l:3"); err != nil {
		t.Fatal(err)
	}
	if ls, err := b.Locations(ctx); err != nil || len(ls) != 1 || ls[0].IQN != "iqn.l:1" || ls[0].Gateway != "gw-a" || !ls[0].Live ||
		!slices.Equal(ls[0].Addresses, l.Addresses) {
		t.Fatalf("locations of rack1 = %+v, %v; want iqn.l:1 on a live gw-a only", ls, err)
	}
	a.Now = func() time.Time { return time.Now().Add(-2 * time.Minute) }
	if err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if l, err := b.Locate(ctx, "iqn.l:1"); err != nil || l.Live || len(l.Addresses) != 2 {
		t.Fatalf("locate a disk of gw-a after its lease expired: %+v, %v; want it not live", l, err)
	}
}
