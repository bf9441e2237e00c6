//go:build ceph_preview

package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/sitetest"
	"github.com/bmi-go/bmi/service/cli"
	"github.com/bmi-go/bmi/service/clikit"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/daemon"
	"github.com/bmi-go/bmi/service/legacy"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

// TestMigrateLegacySite builds an original BMI site for real (the
// original's schema filled as it did; RBD images made by its recipes —
// import, provision, snapshot — under <uid>img<id> on the test cluster;
// tgt and pxelinux/iPXE files), refuses bad input without writing, runs
// bmid migrate-legacy (dry run, run, run again), starts bmid on the
// migrated state, reads the migrated node's disk and a new node's disk
// (provisioned from the migrated snapshot) over a real iSCSI login made
// from bmid's sanboot answers, and takes everything down with the CLI.
func TestMigrateLegacySite(t *testing.T) {
	var rb [3]byte
	_, _ = rand.Read(rb[:])
	uid := "lg" + hex.EncodeToString(rb[:])
	conf, pool := cephtest.Cluster(t)
	o := newOriginalSite(t, conf, pool, uid)
	o.exec(`INSERT INTO project VALUES (2, 'tenant-a')`)
	data := make([]byte, 16<<20)
	marker := []byte("written into the golden image of the original BMI " + uid)
	copy(data[1<<20:], marker)
	golden := uid + "-golden"
	img := o.importGolden(2, golden, data)
	node := o.provision(2, "node-01", img, "52:54:00:00:01:01")
	o.snapshot(2, node, img, "snap1")
	o.bootFiles("node-09", "node-09", o.ceph(99), "52:54:00:00:09:09") // left behind by a dpro
	opts := legacy.Options{Config: o.ini, TgtDir: o.tgtDir}
	ctx := context.Background()
	var report, again string

	s := sitetest.Start(t, sitetest.Options{UID: uid, Configure: func(tb testing.TB, cfg *config.Config) {
		badInput(t, *cfg, o)       // with bmid's default snapshot name first
		cfg.Ceph.Snapshot = o.snap // as `bmid config convert-legacy` sets it
		var dry bytes.Buffer
		r, err := daemon.MigrateLegacy(ctx, *cfg, opts, true, logging.Discard())
		if err != nil {
			tb.Fatalf("dry run: %v", err)
		}
		_ = r.Write(&dry)
		if n := stateRows(tb, cfg.State.Path); n != 0 {
			tb.Fatalf("the dry run wrote %d rows", n)
		}
		r, err = daemon.MigrateLegacy(ctx, *cfg, opts, false, logging.Discard())
		if err != nil {
			tb.Fatalf("migrate-legacy: %v", err)
		}
		var b bytes.Buffer
		_ = r.Write(&b)
		report = b.String()
		if strings.ReplaceAll(dry.String(), "would be taken over (dry run: nothing written)", "taken over") != report {
			tb.Fatalf("the dry run's report differs from the run's:\n%s\n---\n%s", dry.String(), report)
		}
		r, err = daemon.MigrateLegacy(ctx, *cfg, opts, false, logging.Discard())
		if err != nil {
			tb.Fatalf("second migrate-legacy: %v", err)
		}
		b.Reset()
		_ = r.Write(&b)
		again = b.String()
	}})
	t.Logf("migrate-legacy report:\n%s", report)
	for _, want := range []string{`projects taken over: 2`, `images taken over: 1`, `snapshots taken over: 1`,
		`disks taken over (each gets a target of bmid's): 1`, `boot configs taken over: 1`,
		`"node-01" of project "tenant-a" (Ceph ` + o.ceph(node) + `)`, `tgt target ` + o.ceph(node),
		`boot files of node "node-09"`, `node "node-01": its NIC is unknown (the original's files hold the MAC only; HIL: no HIL account is configured (hil.user))`} {
		if !strings.Contains(report, want) {
			t.Fatalf("the report lacks %q:\n%s", want, report)
		}
	}
	if !strings.Contains(again, "nothing to do: all 5 rows were taken over by an earlier run") {
		t.Fatalf("the second run did something:\n%s", again)
	}

	alice := map[string]string{"BMI_URL": s.URL, "HIL_USERNAME": "alice", "HIL_PASSWORD": "alice-secret"}
	admin := map[string]string{"BMI_URL": s.URL, "HIL_USERNAME": "hiladmin", "HIL_PASSWORD": "admin-secret"}
	bmi := func(env map[string]string, want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		root := cli.NewRoot(cli.Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""), Getenv: func(k string) string { return env[k] }})
		if code := clikit.Run(ctx, root, args, &errb); code != want {
			t.Fatalf("bmi %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out.String(), errb.String())
		}
		return out.String()
	}
	has := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("output lacks %q:\n%s", w, out)
			}
		}
	}
	has(bmi(alice, 0, "ls", "tenant-a"), golden, o.ceph(img))
	has(bmi(alice, 0, "snap", "ls", "tenant-a"), "snap1")
	has(bmi(alice, 0, "showpro", "tenant-a"), "node-01", golden)
	member, adm := [2]string{"alice", "alice-secret"}, [2]string{"hiladmin", "admin-secret"}
	if got := readFromSanboot(t, s.URL, member, adm, "tenant-a", "node-01"); !bytes.Equal(got, data) {
		t.Fatalf("the migrated node's disk read over iSCSI differs from the golden image (%d bytes, marker found: %v)",
			len(got), bytes.Contains(got, marker))
	}
	// A new node from the migrated snapshot; its disk's id comes after the kept ones.
	bmi(alice, 0, "pro", "tenant-a", "node-02", "snap1", "eth0")
	has(bmi(admin, 0, "db", "ls", "--name", "node-02"), o.ceph(4))
	if got := readFromSanboot(t, s.URL, member, adm, "tenant-a", "node-02"); !bytes.Equal(got, data) {
		t.Fatalf("node-02's disk (from the migrated snapshot) differs from the golden image")
	}
	// Take it all down with BMI's own commands: the migrated rows are BMI's now.
	// The NIC the original's files did not hold, as the report says; the
	// node keeps its disk (dpro deletes it).
	bmi(alice, 0, "boot", "set", "tenant-a", "node-01", "node-01", "eth0")
	has(bmi(alice, 0, "boot", "show", "tenant-a", "node-01"), "eth0", "52:54:00:00:01:01", "yes")
	bmi(alice, 0, "dpro", "tenant-a", "node-01", "eth0")
	bmi(alice, 0, "dpro", "tenant-a", "node-02", "eth0")
	bmi(alice, 0, "snap", "rm", "tenant-a", "snap1")
	bmi(alice, 0, "rm", "tenant-a", golden)
	if out, _ := cephtest.RBD(conf, pool, "ls"); strings.Contains(out, uid+"img") {
		t.Fatalf("BMI images left in the pool:\n%s", out)
	}
}

// badInput runs migrate-legacy on broken sites, each into a new state:
// each run fails with one line naming what is wrong and writes nothing.
func badInput(t *testing.T, cfg config.Config, o *originalSite) {
	ctx := context.Background()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not sqlite "), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign.db")
	fdb, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fdb.Exec(`CREATE TABLE project (id INTEGER PRIMARY KEY, title TEXT)`); err != nil {
		t.Fatal(err)
	}
	fdb.Close()
	ghost := filepath.Join(dir, "ghost.db")
	b, err := os.ReadFile(o.dbPath)
	if err == nil {
		err = os.WriteFile(ghost, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	gdb, err := sql.Open("sqlite", ghost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gdb.Exec(`INSERT INTO image VALUES (50, 'ghost', 0, 0, 2, NULL)`); err != nil {
		t.Fatal(err)
	}
	gdb.Close()
	cases := map[string]struct {
		db   string
		want string
	}{
		"another snapshot name": {o.dbPath, `the original's [bmi] snapshot is "bmi_created_snapshot", bmid's ceph.snapshot is "bmi-snap"`},
		"corrupt database":      {garbage, "not an intact SQLite database"},
		"foreign database":      {foreign, `not the original BMI's: table "project" has no column "name"`},
		"missing Ceph image":    {ghost, `image row 50 ("ghost" of project "tenant-a"): its Ceph image ` + o.ceph(50) + ` is missing`},
	}
	for name, tc := range cases {
		c := cfg
		if name != "another snapshot name" {
			c.Ceph.Snapshot = o.snap
		}
		c.State.Path = filepath.Join(t.TempDir(), "bmid.db")
		_, err := daemon.MigrateLegacy(ctx, c, legacy.Options{Config: o.ini, DB: tc.db, TgtDir: o.tgtDir}, false, logging.Discard())
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%s: migrate-legacy = %v, want one line with %q", name, err, tc.want)
		}
		if _, serr := os.Stat(c.State.Path); serr == nil {
			if n := stateRows(t, c.State.Path); n != 0 {
				t.Fatalf("%s: %d rows written", name, n)
			}
		}
	}
}

// stateRows counts the project and image rows of a state database.
func stateRows(tb testing.TB, path string) int {
	tb.Helper()
	db, err := store.Open(context.Background(), path, logging.Discard())
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	n, err := db.UnimportedRows(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	imported, err := db.LegacyImported(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return n + len(imported["project"]) + len(imported["image"])
}
