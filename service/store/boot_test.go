package store

import (
	"context"
	"testing"

	"github.com/bmi-go/bmi/service/core"
	"github.com/pressly/goose/v3"
)

func TestBootOwnership(t *testing.T) { eachEngine(t, testBootOwnership) }

// testBootOwnership: a boot config keeps the disk pro made for its node
// (owned_disk_id) while the node boots another; it owns the disk it
// boots exactly when that is the one; deleting the owned disk's row ends
// the ownership; a boot config journaled before owned_disk_id (OwnsDisk
// only) owns the disk it boots and is attached.
func testBootOwnership(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	if _, err := s.CreateProject(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	disk := map[string]int64{}
	for _, n := range []string{"n1", "d2"} {
		im, err := s.InsertImage(ctx, core.Image{Project: "p", Name: n, Kind: core.KindDisk, State: core.StateReady}, "u1")
		if err != nil {
			t.Fatal(err)
		}
		disk[n] = im.ID
	}
	put := func(b core.BootConfig) core.BootConfig {
		t.Helper()
		b.Node, b.Project, b.NIC, b.MAC = "n1", "p", "eth0", "52:54:00:00:00:01"
		if err := s.PutBoot(ctx, b); err != nil {
			t.Fatal(err)
		}
		got, err := s.Boot(ctx, "n1")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	tests := []struct {
		name  string
		put   core.BootConfig
		owns  bool
		owned int64
		att   bool
	}{
		{"provisioned", core.BootConfig{DiskID: disk["n1"], OwnedDiskID: disk["n1"], Attached: true}, true, disk["n1"], true},
		{"switched", core.BootConfig{DiskID: disk["d2"], OwnedDiskID: disk["n1"], Attached: true}, false, disk["n1"], true},
		{"switched back", core.BootConfig{DiskID: disk["n1"], OwnedDiskID: disk["n1"], Attached: true}, true, disk["n1"], true},
		{"set-boot only", core.BootConfig{DiskID: disk["d2"]}, false, 0, false},
		{"journaled before owned_disk_id", core.BootConfig{DiskID: disk["n1"], OwnsDisk: true}, true, disk["n1"], true},
	}
	for _, tc := range tests {
		if b := put(tc.put); b.OwnsDisk != tc.owns || b.OwnedDiskID != tc.owned || b.Attached != tc.att {
			t.Errorf("%s: boot config %+v, want owns=%v owned=%d attached=%v", tc.name, b, tc.owns, tc.owned, tc.att)
		}
	}
	put(core.BootConfig{DiskID: disk["d2"], OwnedDiskID: disk["n1"], Attached: true})
	if err := s.DeleteImage(ctx, disk["n1"]); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Boot(ctx, "n1"); err != nil || b.OwnedDiskID != 0 || b.OwnsDisk || !b.Attached || b.DiskID != disk["d2"] {
		t.Fatalf("boot config after its owned disk's row was deleted = %+v, %v; want no owned disk, still booting d2", b, err)
	}
}

func TestBootOwnershipMigration(t *testing.T) { eachEngine(t, testBootOwnershipMigration) }

// testBootOwnershipMigration: migration 00010 takes the boot configs of
// an older schema over: one that owns its disk owns it (owned_disk_id)
// and is attached; one that does not owns nothing. Its down migration
// works, and up again.
func testBootOwnershipMigration(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	if _, err := s.CreateProject(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	disk := map[string]int64{}
	for _, n := range []string{"n1", "d2"} {
		im, err := s.InsertImage(ctx, core.Image{Project: "p", Name: n, Kind: core.KindDisk, State: core.StateReady}, "u1")
		if err != nil {
			t.Fatal(err)
		}
		disk[n] = im.ID
	}
	fsys, err := migrationsFor(s.db.dialect)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(s.db.dialect.goose, s.db.raw, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 9); err != nil {
		t.Fatal(err)
	}
	for i, b := range []struct {
		node string
		disk int64
		owns bool
	}{{"n1", disk["n1"], true}, {"n2", disk["d2"], false}} {
		if _, err := s.db.ExecContext(ctx, `INSERT INTO boot_configs (node, project_id, disk_id, nic, mac, owns_disk, updated_at)
			VALUES (?, (SELECT id FROM projects WHERE name = 'p'), ?, 'eth0', ?, ?, 1)`, b.node, b.disk, []string{"52:54:00:00:00:01", "52:54:00:00:00:02"}[i], b.owns); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Boot(ctx, "n1"); err != nil || !b.OwnsDisk || b.OwnedDiskID != disk["n1"] || !b.Attached {
		t.Fatalf("n1 (owned its disk) after 00010 = %+v, %v", b, err)
	}
	if b, err := s.Boot(ctx, "n2"); err != nil || b.OwnsDisk || b.OwnedDiskID != 0 || b.Attached {
		t.Fatalf("n2 (did not own its disk) after 00010 = %+v, %v", b, err)
	}
}
