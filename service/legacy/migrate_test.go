package legacy_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/legacy"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

// fakeCeph is RBD as the migration reads it (the real one is in
// service/cli/e2e's TestMigrateLegacySite).
type fakeCeph map[string]legacy.CephImage

func (f fakeCeph) Stat(_ context.Context, name string) (legacy.CephImage, error) {
	im, ok := f[name]
	if !ok {
		return legacy.CephImage{}, fault.Errorf(fault.NotFound, "image %q: not found", name)
	}
	return im, nil
}

const schema = `
CREATE TABLE project (id INTEGER NOT NULL, name VARCHAR NOT NULL, PRIMARY KEY (id), UNIQUE (name));
CREATE TABLE image (id INTEGER NOT NULL, name VARCHAR NOT NULL, is_public BOOLEAN NOT NULL, is_snapshot BOOLEAN NOT NULL,
	project_id INTEGER NOT NULL, parent_id INTEGER, PRIMARY KEY (id), UNIQUE (project_id, name));
INSERT INTO project VALUES (1, 'bmi_infra'), (2, 'tenant-a');
INSERT INTO image VALUES (1, 'debian', 0, 0, 2, NULL), (2, 'node-01', 0, 0, 2, 1), (3, 'snap1', 0, 1, 2, 1);`

// site writes an original site (database with sql run after the schema,
// configuration, boot files of node-01) and the Ceph images of its rows.
func site(t *testing.T, extra string) (legacy.Options, fakeCeph) {
	t.Helper()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "bmi.db")
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(schema + extra); err != nil {
		t.Fatal(err)
	}
	pxe := filepath.Join(dir, "pxelinux.cfg")
	if err := os.MkdirAll(pxe, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		filepath.Join(dir, "bmiconfig.cfg"):        fmt.Sprintf("[bmi]\nuid = 7\nsnapshot = snap\n[db]\npath = %s\n[fs]\npool = rbd\n[tftp]\npxelinux_path = %s/\nipxe_path = %s/\n", dbPath, pxe, dir),
		filepath.Join(pxe, "01-52-54-00-00-01-01"): "DEFAULT menu\nLABEL node-01\n     KERNEL ipxe.lkrn\n     INITRD node-01.ipxe\n",
		filepath.Join(dir, "node-01.ipxe"):         "#!ipxe\nsanboot --keep iscsi:10.0.0.1:tcp:3260:1:7img2\nboot\n",
	}
	for p, text := range files {
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ceph := fakeCeph{
		"7img1": {Size: 1 << 30, Snaps: map[string]bool{"snap": true}},
		"7img2": {Size: 1 << 30, Parent: "7img1@snap"},
		"7img3": {Size: 1 << 30, Snaps: map[string]bool{"snap": true}},
	}
	return legacy.Options{Config: filepath.Join(dir, "bmiconfig.cfg"), TgtDir: filepath.Join(dir, "tgt")}, ceph
}

func state(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "bmid.db"), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var to = legacy.Target{UID: "7", Snapshot: "snap", IQNPrefix: "iqn.2026-11.org.bmi"}

// fakeNICs is HIL's node-01 with its NIC eth0.
type fakeNICs struct{}

func (fakeNICs) NICOf(_ context.Context, node, mac string) (string, error) {
	if node == "node-01" && mac == "52:54:00:00:01:01" {
		return "eth0", nil
	}
	return "", fault.Errorf(fault.NotFound, "hil: node %q has no NIC with MAC %s", node, mac)
}

// nics is what the tests' runs ask for NIC labels (nil: no HIL account).
var nics legacy.NICs = fakeNICs{}

func migrate(t *testing.T, o legacy.Options, ceph legacy.Ceph, st legacy.State, dry bool) (legacy.Report, error) {
	t.Helper()
	s, err := legacy.ReadSite(context.Background(), o)
	if err != nil {
		return legacy.Report{}, err
	}
	return legacy.Migrate(context.Background(), s, ceph, st, nics, to, dry)
}

// TestMigrate: rows, kinds, kept ids and Ceph names, the disk's target
// and boot config; a second run brings nothing.
func TestMigrate(t *testing.T) {
	ctx := context.Background()
	o, ceph := site(t, "")
	st := state(t)
	r, err := migrate(t, o, ceph, st, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Projects) != 2 || len(r.Images) != 1 || len(r.Snapshots) != 1 || len(r.Disks) != 1 || len(r.Boots) != 1 {
		t.Fatalf("report = %+v", r)
	}
	for name, want := range map[string]string{"debian": "image 1 7img1 0", "node-01": "disk 2 7img2 1", "snap1": "snapshot 3 7img3 1"} {
		im, err := st.Image(ctx, "tenant-a", name)
		if got := fmt.Sprintf("%s %d %s %d", im.Kind, im.ID, im.CephName, im.ParentID); err != nil || got != want {
			t.Fatalf("row %q = %s (%v), want %s", name, got, err, want)
		}
	}
	tg, err := st.Target(ctx, 2)
	if err != nil || tg.IQN != "iqn.2026-11.org.bmi:7.2" || tg.CHAPSecret == "" {
		t.Fatalf("target of the disk = %+v, %v", tg, err)
	}
	b, err := st.Boot(ctx, "node-01")
	if err != nil || b.MAC != "52:54:00:00:01:01" || b.NIC != "eth0" || b.DiskID != 2 || !b.OwnsDisk {
		t.Fatalf("boot config = %+v, %v", b, err)
	}
	r, err = migrate(t, o, ceph, st, false)
	if err != nil || !r.Nothing || len(r.Skipped) != 5 {
		t.Fatalf("second run = %+v, %v", r, err)
	}
}

// TestMigrateBadInput: each problem stops the run before anything is
// written, with one line naming the row.
func TestMigrateBadInput(t *testing.T) {
	tests := map[string]struct {
		sql   string
		ceph  func(fakeCeph)
		state func(*testing.T, *store.DB)
		want  string
	}{
		"missing Ceph image":      {ceph: func(c fakeCeph) { delete(c, "7img3") }, want: `image row 3 ("snap1" of project "tenant-a"): its Ceph image 7img3 is missing`},
		"unprotected snapshot":    {ceph: func(c fakeCeph) { c["7img1"] = legacy.CephImage{Snaps: map[string]bool{"snap": false}} }, want: `image row 1 ("debian" of project "tenant-a"): its Ceph image 7img1 has no protected snapshot "snap"`},
		"clone of another image":  {ceph: func(c fakeCeph) { c["7img2"] = legacy.CephImage{Parent: "golden@snap"} }, want: `image row 2 ("node-01" of project "tenant-a"): its Ceph image 7img2 is a clone of golden@snap`},
		"parent is no row":        {sql: `INSERT INTO image VALUES (4, 'x', 0, 0, 2, 40);`, want: `image row 4 ("x" of project "tenant-a"): parent_id 40 is not an image row`},
		"project is no row":       {sql: `INSERT INTO image VALUES (4, 'x', 0, 0, 9, NULL);`, want: `image row 4 ("x"): project_id 9 is not a project row`},
		"parent in other project": {sql: `INSERT INTO image VALUES (4, 'x', 0, 0, 1, 1);`, want: `image row 4 ("x" of project "bmi_infra"): parent "debian" (row 1) is in another project`},
		"name not valid here":     {sql: `INSERT INTO image VALUES (4, 'a b', 0, 0, 2, NULL);`, want: `image row 4 ("a b" of project "tenant-a"): name "a b"`},
		"not a boolean":           {sql: `INSERT INTO image VALUES (4, 'x', 7, 0, 2, NULL);`, want: `image row 4 ("x"): is_public/is_snapshot are not booleans`},
		"state BMI made": {state: func(t *testing.T, st *store.DB) {
			if _, err := st.CreateProject(context.Background(), "tenant-z"); err != nil {
				t.Fatal(err)
			}
		}, want: "the state database has 1 project and image rows that migrate-legacy did not bring over"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o, ceph := site(t, tc.sql)
			if tc.ceph != nil {
				tc.ceph(ceph)
			}
			st := state(t)
			before := 0
			if tc.state != nil {
				tc.state(t, st)
				before = 1
			}
			_, err := migrate(t, o, ceph, st, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Migrate = %v, want one line with %q", err, tc.want)
			}
			n, _ := st.UnimportedRows(context.Background())
			done, _ := st.LegacyImported(context.Background())
			if n != before || len(done["project"])+len(done["image"]) != 0 {
				t.Fatalf("a failed run wrote rows: %d, %v", n, done)
			}
		})
	}
}

// TestReadSiteForeign: files that are not the original's database.
func TestReadSiteForeign(t *testing.T) {
	o, _ := site(t, "")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("garbage ", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign.db")
	db, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE project (id INTEGER, name TEXT); CREATE TABLE image (id INTEGER, name TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for path, want := range map[string]string{garbage: "not an intact SQLite database", foreign: `table "image" has no column "is_public"`,
		filepath.Join(dir, "absent.db"): "no such file"} {
		o.DB = path
		_, err := legacy.ReadSite(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("ReadSite(%s) = %v, want an error naming it with %q", path, err, want)
		}
	}
}

// TestMigrateDryRun writes nothing and reports what a run would do.
func TestMigrateDryRun(t *testing.T) {
	o, ceph := site(t, "")
	st := state(t)
	r, err := migrate(t, o, ceph, st, true)
	if err != nil || !r.DryRun || len(r.Images) != 1 {
		t.Fatalf("dry run = %+v, %v", r, err)
	}
	done, _ := st.LegacyImported(context.Background())
	if n, _ := st.UnimportedRows(context.Background()); n != 0 || len(done["project"]) != 0 {
		t.Fatalf("the dry run wrote rows")
	}
}

// TestMigrateUnknownNIC: without HIL (no bmid account) the boot config's
// NIC stays empty and the report says how to set it.
func TestMigrateUnknownNIC(t *testing.T) {
	ctx := context.Background()
	o, ceph := site(t, "")
	st := state(t)
	s, err := legacy.ReadSite(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	r, err := legacy.Migrate(ctx, s, ceph, st, nil, to, false)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := st.Boot(ctx, "node-01"); err != nil || b.NIC != "" {
		t.Fatalf("boot config = %+v, %v; want no NIC", b, err)
	}
	if !strings.Contains(strings.Join(r.Hand, "\n"), "`bmi boot set tenant-a node-01 node-01 NIC` records it") {
		t.Fatalf("the report does not say how to set the NIC: %q", r.Hand)
	}
}
