package core_test

import (
	"context"
	"testing"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// TestSwitchedNodeOwnership: a node pro made a disk for keeps that disk
// as its own while it boots another one (the acceptance suite's disk
// switch): dpro deletes it (and only it), detaches the NIC and clears the
// boot config; switching back makes the node own the disk it boots again;
// deleting pro's disk while the node boots another one clears the
// ownership, so dpro never deletes a later disk of that name. With the
// shared provisioning network and with per-project ones.
func TestSwitchedNodeOwnership(t *testing.T) {
	ctx := context.Background()
	type want struct {
		disks  []string // tenant-a's disks after the scenario
		booted string   // the disk node1 boots ("": no boot config)
		owns   bool     // node1 owns the disk it boots
		owned  string   // the disk pro made that node1 still owns ("": none)
		onNet  bool     // node1's NIC is on the provisioning network
	}
	provision := func(e *env) { e.must(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0")) }
	disk := func(e *env, name string) { e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", name)) }
	boot := func(e *env, name string) { e.must(e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", name)) }
	dpro := func(e *env) { e.ok(e.svc.Deprovision(ctx, alice, "tenant-a", "node1", "eth0")) }
	tests := map[string]struct {
		run  func(e *env)
		want want
	}{
		"switched": {
			run:  func(e *env) { provision(e); disk(e, "d2"); boot(e, "d2") },
			want: want{disks: []string{"d2", "node1"}, booted: "d2", owned: "node1", onNet: true},
		},
		"switched, then dpro deletes pro's disk and detaches": {
			run:  func(e *env) { provision(e); disk(e, "d2"); boot(e, "d2"); dpro(e) },
			want: want{disks: []string{"d2"}},
		},
		"switched back": {
			run:  func(e *env) { provision(e); disk(e, "d2"); boot(e, "d2"); boot(e, "node1") },
			want: want{disks: []string{"d2", "node1"}, booted: "node1", owns: true, owned: "node1", onNet: true},
		},
		"switched back, then dpro": {
			run:  func(e *env) { provision(e); disk(e, "d2"); boot(e, "d2"); boot(e, "node1"); dpro(e) },
			want: want{disks: []string{"d2"}},
		},
		"pro's disk deleted while switched": {
			run: func(e *env) {
				provision(e)
				disk(e, "d2")
				boot(e, "d2")
				e.ok(e.svc.DeleteDisk(ctx, alice, "tenant-a", "node1"))
			},
			want: want{disks: []string{"d2"}, booted: "d2", onNet: true},
		},
		"pro's disk deleted, the user makes one of its name and boots it, dpro keeps it": {
			run: func(e *env) {
				provision(e)
				disk(e, "d2")
				boot(e, "d2")
				e.ok(e.svc.DeleteDisk(ctx, alice, "tenant-a", "node1"))
				disk(e, "node1")
				boot(e, "node1")
				dpro(e)
			},
			want: want{disks: []string{"d2", "node1"}},
		},
		"pro's disk deleted, the user makes one of its name, dpro keeps it": {
			run: func(e *env) {
				provision(e)
				disk(e, "d2")
				boot(e, "d2")
				e.ok(e.svc.DeleteDisk(ctx, alice, "tenant-a", "node1"))
				disk(e, "node1")
				dpro(e)
			},
			want: want{disks: []string{"d2", "node1"}},
		},
		"set-boot only, then dpro clears and detaches, keeps the disk": {
			run:  func(e *env) { disk(e, "d2"); boot(e, "d2"); dpro(e) },
			want: want{disks: []string{"d2"}},
		},
		"switched, then clear-boot keeps pro's disk and detaches": {
			run: func(e *env) {
				provision(e)
				disk(e, "d2")
				boot(e, "d2")
				e.ok(e.svc.ClearBoot(ctx, alice, "tenant-a", "node1"))
			},
			want: want{disks: []string{"d2", "node1"}},
		},
	}
	for _, perProject := range []bool{false, true} {
		for name, tc := range tests {
			mode := map[bool]string{false: "shared/", true: "per-project/"}[perProject]
			t.Run(mode+name, func(t *testing.T) {
				e := seededMode(t, perProject)
				tc.run(e)
				e.checkConsistent()
				disks, err := e.svc.ListDisks(ctx, alice, "tenant-a")
				e.ok(err)
				var names []string
				for _, d := range disks {
					names = append(names, d.Name)
				}
				if !equal(names, tc.want.disks) {
					t.Errorf("disks %v, want %v", names, tc.want.disks)
				}
				b, err := e.svc.ShowBoot(ctx, alice, "tenant-a", "node1")
				switch {
				case tc.want.booted == "":
					wantKind(t, err, fault.NotFound)
				case err != nil:
					t.Fatal(err)
				default:
					owned := ""
					if b.OwnedDiskID != 0 {
						d, err := e.db.ImageByID(ctx, b.OwnedDiskID)
						e.ok(err)
						owned = d.Name
					}
					if b.Disk != tc.want.booted || b.OwnsDisk != tc.want.owns || owned != tc.want.owned {
						t.Errorf("boot config %+v (owned disk %q), want disk %q owns=%v owned %q", b, owned, tc.want.booted, tc.want.owns, tc.want.owned)
					}
				}
				if _, on := e.nets.On["node1/eth0"]; on != tc.want.onNet {
					t.Errorf("node1/eth0 on the provisioning network: %v, want %v (%v)", on, tc.want.onNet, e.nets.On)
				}
			})
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSetBootAttaches: setting the boot disk of a node pro never touched
// attaches its NIC to the provisioning network (the shared one, or the
// project's own, created on first use); switching disks keeps it there;
// clear-boot detaches it. Refused calls change nothing.
func TestSetBootAttaches(t *testing.T) {
	ctx := context.Background()
	for _, perProject := range []bool{false, true} {
		t.Run(map[bool]string{false: "shared", true: "per-project"}[perProject], func(t *testing.T) {
			e := seededMode(t, perProject)
			want := "bmi-provision"
			e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "d1"))
			e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "d2"))
			b, err := e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "d1")
			if err != nil || !b.Attached || b.OwnsDisk || b.OwnedDiskID != 0 {
				t.Fatalf("SetBoot = %+v, %v; want attached, owning nothing", b, err)
			}
			if perProject {
				want, err = e.db.ProjectNetwork(ctx, "tenant-a")
				e.ok(err)
			}
			if got := e.nets.On["node1/eth0"]; got != want {
				t.Fatalf("node1/eth0 is on %q after SetBoot, want %q", got, want)
			}
			e.checkConsistent()
			e.must(e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "d2"))
			if got := e.nets.On["node1/eth0"]; got != want {
				t.Fatalf("node1/eth0 is on %q after a switch, want %q", got, want)
			}
			// Another NIC while BMI has the first on the network: refused.
			e.hil.MACs["node1/eth1"] = "52:54:00:00:01:01"
			before := e.tables()
			_, err = e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth1", "d2")
			wantKind(t, err, fault.Conflict)
			if e.tables() != before {
				t.Fatal("a refused SetBoot changed the database")
			}
			e.ok(e.svc.ClearBoot(ctx, alice, "tenant-a", "node1"))
			if n, on := e.nets.On["node1/eth0"]; on {
				t.Fatalf("node1/eth0 still on %q after ClearBoot", n)
			}
			e.checkConsistent()
		})
	}
}

// TestSetBootAttachFails: a SetBoot whose attach fails changes nothing.
func TestSetBootAttachFails(t *testing.T) {
	ctx := context.Background()
	e := seeded(t)
	e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "d1"))
	before := e.state()
	e.nets.FailConnect = fault.Errorf(fault.Unavailable, "injected")
	_, err := e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "d1")
	wantKind(t, err, fault.Unavailable)
	e.nets.FailConnect = nil
	e.checkConsistent()
	if got := e.state(); got != before {
		t.Fatalf("state after a failed SetBoot:\n%s\nwant:\n%s", got, before)
	}
}

// TestDeprovisionSharedOwnDisk: dpro refuses to delete the disk pro made
// for a node while another node boots it, and changes nothing.
func TestDeprovisionSharedOwnDisk(t *testing.T) {
	ctx := context.Background()
	e := seeded(t)
	e.must(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0"))
	e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "d2"))
	e.must(e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "d2"))
	e.must(e.svc.SetBoot(ctx, alice, "tenant-a", "node2", "eth0", "node1"))
	before := e.tables()
	wantKind(t, e.svc.Deprovision(ctx, alice, "tenant-a", "node1", "eth0"), fault.Conflict)
	if e.tables() != before {
		t.Fatal("a refused Deprovision changed the database")
	}
	e.ok(e.svc.ClearBoot(ctx, alice, "tenant-a", "node2"))
	e.ok(e.svc.Deprovision(ctx, alice, "tenant-a", "node1", "eth0"))
	if _, err := e.db.Image(ctx, "tenant-a", "node1"); fault.Of(err) != fault.NotFound {
		t.Fatalf("pro's disk after dpro: %v", err)
	}
	if len(e.nets.On) != 0 {
		t.Fatalf("NICs left on the provisioning network: %v", e.nets.On)
	}
	e.checkConsistent()
}

// TestRemoveProjectSwitchedNodes: a forced project removal removes a
// project whose node boots another node's pro disk (which dpro of that
// node refuses), and detaches every NIC BMI attached.
func TestRemoveProjectSwitchedNodes(t *testing.T) {
	ctx := context.Background()
	e := seeded(t)
	e.must(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0"))
	e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "d2"))
	e.must(e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "d2"))
	e.must(e.svc.SetBoot(ctx, alice, "tenant-a", "node2", "eth0", "node1"))
	e.ok(e.svc.RemoveProject(ctx, admin, "tenant-a", true))
	if n, _ := e.db.CountImages(ctx, "tenant-a"); n != 0 || len(e.nets.On) != 0 {
		t.Fatalf("forced project removal left %d rows, NICs on the network: %v", n, e.nets.On)
	}
	if _, err := e.db.Boot(ctx, "node1"); fault.Of(err) != fault.NotFound {
		t.Fatalf("boot config of node1 after project rm: %v", err)
	}
	e.checkConsistent()
}

// TestSetBootRecordsMigratedNIC: a node taken over from the original BMI
// has a boot config with its MAC but no NIC, attached; `boot set` naming
// the NIC with that MAC records it (what migrate-legacy's report tells
// the operator to do), and naming a NIC with another MAC is refused.
func TestSetBootRecordsMigratedNIC(t *testing.T) {
	ctx := context.Background()
	e := seeded(t)
	d, err := e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "d1")
	e.ok(err)
	mac := e.hil.MACs["node1/eth0"]
	e.ok(e.db.PutBoot(ctx, core.BootConfig{Node: "node1", Project: "tenant-a", DiskID: d.ID, MAC: mac, Attached: true}))
	e.nets.On["node1/eth0"] = "bmi-provision" // where the original put it

	e.hil.MACs["node1/eth1"] = "52:54:00:00:09:99"
	before := e.tables()
	_, err = e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth1", "d1")
	wantKind(t, err, fault.Conflict)
	if e.tables() != before {
		t.Fatal("a refused SetBoot changed the database")
	}
	b, err := e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "d1")
	if err != nil || b.NIC != "eth0" || !b.Attached {
		t.Fatalf("SetBoot naming the migrated node's NIC = %+v, %v; want NIC eth0 recorded, still attached", b, err)
	}
	e.ok(e.svc.ClearBoot(ctx, alice, "tenant-a", "node1"))
	if n, on := e.nets.On["node1/eth0"]; on {
		t.Fatalf("node1/eth0 still on %q after ClearBoot", n)
	}
}
