//go:build ceph_preview

package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/sitetest"
	"github.com/bmi-go/bmi/service/config"
)

// BenchmarkProvisionNetwork measures what a per-project provisioning
// network costs at provision: Provision then Deprovision of node-01 from
// a 1 GiB image in a full bmid on the test Ceph cluster with hil-mock,
// (a) with no network change, (b) with the shared provisioning network
// (hil.provisioning_network: connect and detach through HIL), (c) with a
// per-project network (boot.networks: the project's network claimed and
// created in HIL at the first provision, then connect and detach). Nothing
// is asserted. As root (the per-project site serves DHCP on lo):
//
//	go test -tags pacific,ceph_preview -run '^$' -bench ProvisionNetwork -benchtime 1x ./internal/bench
func BenchmarkProvisionNetwork(b *testing.B) {
	once(b, func() { benchProvisionNetwork(b) })
}

func benchProvisionNetwork(b *testing.B) {
	runs := 9
	if isQuick {
		runs = 5
	}
	sec, done := section("12-provision-network", "12. Provision with a per-project provisioning network",
		fmt.Sprintf("Provision (and Deprovision) of node-01 from a 1 GiB image (64 MiB written), %d runs each, in a full bmid on "+
			"the test Ceph cluster with hil-mock: no network change; the shared provisioning network (connect/detach "+
			"through HIL); a per-project network (boot.networks: the first provision also claims the project's network and "+
			"creates it in HIL).", runs))
	defer done()
	pw := filepath.Join(b.TempDir(), "hil-password")
	if err := os.WriteFile(pw, []byte("admin-secret\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	variants := []struct {
		name string
		tune func(*config.Config)
	}{
		{"no network change", nil},
		{"shared provisioning network", func(c *config.Config) {
			c.HIL.User, c.HIL.PasswordFile, c.HIL.ProvisioningNetwork = "hiladmin", pw, "bmi-provision"
		}},
		{"per-project network", func(c *config.Config) {
			portal := c.ISCSI.Portal
			c.HIL.User, c.HIL.PasswordFile = "hiladmin", pw
			c.Boot.Networks = []config.ProvNet{{Name: "bench-prov-3001", VLAN: 3001, Interface: "lo", Address: "127.0.0.1/8",
				RangeStart: "127.0.3.100", RangeEnd: "127.0.3.199"}}
			c.Boot.HTTPListen = ":" + config.Port(c.Boot.HTTPListen)
			c.Boot.DHCP.IPv6RA = false
			c.ISCSI.Portal = portal
		}},
	}
	_, _, pfx := cephtest.Pool(b)
	for i, v := range variants {
		uid := fmt.Sprintf("%sn%d", strings.TrimSuffix(pfx, "-"), i)
		bmi := sitetest.Start(b, sitetest.Options{UID: uid, OpTimeout: 60 * time.Second, ReadyWait: 120 * time.Second, Configure: func(_ testing.TB, cfg *config.Config) {
			if v.tune != nil {
				v.tune(cfg)
			}
		}})
		s := &site{cfg: bmi.Config, svc: bmi.Daemon.Service(), pfx: pfx}
		ctx := context.Background()
		if _, err := s.svc.CreateProject(ctx, admin, "tenant-a"); err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("pn1g%d", i)
		s.source(b, name, 1, 64)
		var first time.Duration
		var prov, deprov []time.Duration
		for r := range runs + 1 {
			t0 := time.Now()
			if _, err := s.svc.Provision(ctx, alice, "tenant-a", "node-01", name, "eth0"); err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			if r == 0 {
				first = d // the per-project network is claimed and created here
			} else {
				prov = append(prov, d)
			}
			t0 = time.Now()
			if err := s.svc.Deprovision(ctx, alice, "tenant-a", "node-01", ""); err != nil {
				b.Fatal(err)
			}
			if r > 0 {
				deprov = append(deprov, time.Since(t0))
			}
		}
		sec.Note("%s: first provision %.0f ms", v.name, float64(first.Microseconds())/1000)
		sec.Add(Durations(v.name, "bmi provision", "ms", prov))
		sec.Add(Durations(v.name, "bmi deprovision", "ms", deprov))
	}
	for _, v := range variants[1:] {
		sec.Ratio(v.name+" / no network change, provision (median)", sec.Find(v.name, "bmi provision").Median,
			sec.Find("no network change", "bmi provision").Median)
	}
}
