//go:build ceph_preview

package daemon

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/iscsi"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

// TestLocatorNetwork: a login is redirected to the owner's address on the
// network it came in on (the network of this host's address that holds
// the address the initiator connected to); an owner with none there, or
// none at all, is "unavailable" (the initiator tries again), never a
// wrong network's address.
func TestLocatorNetwork(t *testing.T) {
	nets := []netip.Prefix{netip.MustParsePrefix("10.77.0.11/24"), netip.MustParsePrefix("10.77.10.11/24"),
		netip.MustParsePrefix("10.77.10.1/24"), netip.MustParsePrefix("10.77.10.23/24"),
		netip.MustParsePrefix("10.77.11.11/24"), netip.MustParsePrefix("127.0.0.1/8")}
	l := &locator{networks: func() ([]netip.Prefix, error) { return nets, nil }}
	owner := []string{"10.77.0.22:3260", "10.77.10.22:3260", "10.77.11.22:3260"}
	cases := map[string]struct {
		addrs []string
		local string
		want  string
	}{
		"provisioning network":       {owner, "10.77.0.1:3260", "10.77.0.22:3260"},
		"project network":            {owner, "10.77.10.1:3260", "10.77.10.22:3260"},
		"other project network":      {owner, "10.77.11.1:3260", "10.77.11.22:3260"},
		"own address moved here":     {owner, "10.77.10.21:3260", "10.77.10.22:3260"},
		"one address":                {[]string{"127.0.0.1:4000"}, "127.0.0.1:3260", "127.0.0.1:4000"},
		"no address on that network": {owner[:2], "10.77.11.1:3260", ""},
		"no address at all":          {nil, "10.77.0.1:3260", ""},
		"unknown network":            {owner, "192.0.2.1:3260", ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := l.onNetworkOf("gw-b", c.addrs, c.local)
			if c.want == "" {
				if fault.Of(err) != fault.Unavailable {
					t.Fatalf("got %q, %v; want unavailable", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %s", got, err, c.want)
			}
		})
	}
}

// TestDirectory: a discovery at gateway a lists the disks placed on the
// live gateway b, at b's address on the discovery's network, with the
// target's CHAP and an ACL of its explicit initiators plus the nodes that
// boot it; not a's own disks, not b's disks on a network where b has no
// address, not a disk being unexported, and nothing of b once its lease
// has expired (a take-over is due).
func TestDirectory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bmi.db")
	open := func() *store.DB {
		db, err := store.Open(ctx, path, logging.Discard())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	db := open()
	join := func(db *store.DB, id string, addrs ...string) *store.Gateway {
		g, err := store.NewGateway(db, id, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		g.Group, g.Portal, g.Addresses = "rack1", "10.77.0.1:3260", addrs
		if err := g.Join(ctx); err != nil {
			t.Fatal(err)
		}
		return g
	}
	a := join(db, "gw-a", "10.77.0.21:3260", "10.77.10.21:3260")
	b := join(open(), "gw-b", "10.77.0.22:3260")
	if _, err := db.CreateProject(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	disk := func(name string, on *store.Gateway, initiators ...string) core.Target {
		im, err := db.InsertImage(ctx, core.Image{Project: "p", Name: name, Kind: core.KindDisk, State: core.StateReady}, "u1")
		if err != nil {
			t.Fatal(err)
		}
		tg := core.Target{DiskID: im.ID, IQN: "iqn.2026-11.org.bmi:u1." + name, CHAPUser: "bmi-u1-" + name,
			CHAPSecret: "secret-of-" + name, Initiators: initiators}
		if err := db.PutTarget(ctx, tg); err != nil {
			t.Fatal(err)
		}
		if p, err := on.Place(ctx, tg.IQN); err != nil || p.Gateway != on.ID() {
			t.Fatalf("place %s on %s: %+v, %v", name, on.ID(), p, err)
		}
		return tg
	}
	disk("d3", a) // placed by count: one each, then b again on a tie
	d1 := disk("d1", b, "iqn.2026-11.org.test:extra")
	d2 := disk("d2", b)
	if err := db.PutBoot(ctx, core.BootConfig{Node: "n1", Project: "p", DiskID: d1.DiskID, NIC: "eth0", MAC: "52:54:00:00:00:01"}); err != nil {
		t.Fatal(err)
	}
	if err := b.RequestUnexport(ctx, d2.IQN); err != nil {
		t.Fatal(err)
	}
	nets := []netip.Prefix{netip.MustParsePrefix("10.77.0.21/24"), netip.MustParsePrefix("10.77.10.21/24")}
	loc := &locator{networks: func() ([]netip.Prefix, error) { return nets, nil }}
	loc.member.Store(&member{Gateway: a})
	dir := &directory{loc: loc, db: db, nodeIQN: func(n string) string { return "iqn.2026-11.org.bmi:u1.node." + n }}

	got, err := dir.Elsewhere(ctx, "10.77.0.1:3260")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("listed %+v; want d1 only", got)
	}
	want := iscsi.Listed{Portal: "10.77.0.22:3260", Export: iscsi.Export{IQN: d1.IQN, CHAP: &iscsi.CHAP{User: d1.CHAPUser, Secret: d1.CHAPSecret},
		Initiators: []string{"iqn.2026-11.org.bmi:u1.node.n1", "iqn.2026-11.org.test:extra"}}}
	if g := got[0]; g.Portal != want.Portal || g.Export.IQN != want.Export.IQN || g.Export.CHAP == nil || *g.Export.CHAP != *want.Export.CHAP ||
		!slices.Equal(g.Export.Initiators, want.Export.Initiators) {
		t.Fatalf("listed %+v (CHAP %+v); want %+v", g, g.Export.CHAP, want)
	}
	if got, err := dir.Elsewhere(ctx, "10.77.10.1:3260"); err != nil || len(got) != 0 {
		t.Fatalf("at a network where gw-b has no address: %+v, %v; want nothing", got, err)
	}
	b.Now = func() time.Time { return time.Now().Add(-2 * time.Minute) }
	if err := b.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := dir.Elsewhere(ctx, "10.77.0.1:3260"); err != nil || len(got) != 0 {
		t.Fatalf("after gw-b's lease expired: %+v, %v; want nothing", got, err)
	}
}
