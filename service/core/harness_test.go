package core_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/pgtest"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/core/coretest"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

const uid = "t1"

var (
	admin = core.Principal{User: "admin", Password: "adminpw"}
	alice = core.Principal{User: "alice", Password: "alicepw"} // member of tenant-a
	bob   = core.Principal{User: "bob", Password: "bobpw"}     // member of tenant-b
	anon  = core.Principal{User: "mallory", Password: "guess"}
	infra = core.Principal{User: "ops", Password: "opspw"} // member of the admin project
)

// env is one BMI with a real SQLite store in dir and fake collaborators.
type env struct {
	t      testing.TB
	dir    string
	db     *store.DB
	images *coretest.Images
	exp    *coretest.Exporter
	files  coretest.Files
	hil    *coretest.HIL
	nets   *coretest.Networks
	svc    *core.Service
	// perProject: the BMI gives each project a provisioning network of
	// its own (projectNetworks), set by a marker file in dir.
	perProject bool
}

// perProjectMarker in an env's directory opens it with per-project
// provisioning networks.
const perProjectMarker = "per-project-networks"

var projectNetworks = []core.ProjectNetwork{{Name: "prov-101", VLAN: 101}, {Name: "prov-102", VLAN: 102}}

// setPerProject makes dir's env use per-project networks.
func setPerProject(t testing.TB, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, perProjectMarker), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newHIL() *coretest.HIL {
	return &coretest.HIL{
		Users: map[string]coretest.User{
			"admin": {Password: "adminpw", Admin: true},
			"alice": {Password: "alicepw", Projects: []string{"tenant-a"}},
			"bob":   {Password: "bobpw", Projects: []string{"tenant-b"}},
			"ops":   {Password: "opspw", Projects: []string{"bmi_infra"}},
		},
		MACs:  map[string]string{"node1/eth0": "52:54:00:00:00:01", "node2/eth0": "52-54-00-00-00-02", "node3/eth0": "52:54:00:00:00:03"},
		Owner: map[string]string{"node1": "tenant-a", "node2": "tenant-a", "node3": "tenant-b"},
	}
}

// envDir makes the directory of a new env whose state database is on
// engine: "sqlite" (state.db in the directory) or "postgres" (a database
// of its own in the test server, named by the file pg.dsn there).
func envDir(t testing.TB, engine string) string {
	t.Helper()
	dir := t.TempDir()
	if engine == "postgres" {
		if err := os.WriteFile(filepath.Join(dir, "pg.dsn"), []byte(pgtest.Database(t)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// openEnv opens (or reopens, after a crash) the BMI whose state is in dir;
// as the gateway named by BMI_CRASH_GATEWAY when that is set (a child of
// TestTakeOver).
func openEnv(t testing.TB, dir string) *env {
	t.Helper()
	e := openDB(t, dir)
	e.svc = e.service(t, joinGateway(t, e.db, os.Getenv("BMI_CRASH_GATEWAY"), time.Hour))
	return e
}

// openDB opens the state database of the env in dir and its fakes; the
// env has no service yet.
func openDB(t testing.TB, dir string) *env {
	t.Helper()
	ctx := context.Background()
	var db *store.DB
	dsn, err := os.ReadFile(filepath.Join(dir, "pg.dsn"))
	switch {
	case err == nil:
		db, err = store.OpenPostgres(ctx, string(dsn), logging.Discard())
	case os.IsNotExist(err):
		db, err = store.Open(ctx, filepath.Join(dir, "state.db"), logging.Discard())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	files := filepath.Join(dir, "bootfiles")
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, dir: dir, db: db, images: coretest.NewImages(filepath.Join(dir, "ceph.json")),
		exp: coretest.NewExporter(), files: coretest.Files{Dir: files}, hil: newHIL(), nets: coretest.NewNetworks(filepath.Join(dir, "networks.json"))}
}

// service returns a core on the env's database and fakes, as gateway gw
// (nil: the only bmid on its database); with per-project networks when
// the env's directory has the marker.
func (e *env) service(t testing.TB, gw *store.Gateway) *core.Service {
	t.Helper()
	if gw == nil {
		return e.serviceAs(t, nil)
	}
	return e.serviceAs(t, gw)
}

// serviceAs is service with any core.Gateway (nil: none).
func (e *env) serviceAs(t testing.TB, gw core.Gateway) *core.Service {
	t.Helper()
	db := e.db
	cfg := core.Config{UID: uid, Snapshot: "bmi-snap", IQNPrefix: "iqn.2026-11.org.bmi", AdminProject: "bmi_infra",
		ProvisioningNetwork: "bmi-provision", Channel: "vlan/native"}
	if _, err := os.Stat(filepath.Join(e.dir, perProjectMarker)); err == nil {
		e.perProject = true
		cfg.ProvisioningNetwork, cfg.ProjectNetworks = "", projectNetworks
	}
	d := core.Deps{Projects: db, Rows: db, Targets: db, Boots: db, Leases: db, Journal: db, Images: e.images, Exporter: e.exp,
		Files: e.files, Nodes: e.hil, Networks: e.nets, ProjectNets: db, Auth: e.hil, Log: logging.Discard()}
	if gw != nil {
		d.Gateway = gw
	}
	svc, err := core.New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// joinGateway joins db as gateway id with leases of ttl; "" joins
// nothing and returns nil.
func joinGateway(t testing.TB, db *store.DB, id string, ttl time.Duration) *store.Gateway {
	t.Helper()
	if id == "" {
		return nil
	}
	gw, err := store.NewGateway(db, id, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Join(context.Background()); err != nil {
		t.Fatal(err)
	}
	return gw
}

// seeded returns an env with projects tenant-a, tenant-b, bmi_infra, a
// golden Ceph image and its import "debian" in tenant-a.
func seeded(t testing.TB) *env {
	t.Helper()
	return seededOn(t, "sqlite")
}

// seededOn is seeded with the state database on engine (see envDir).
func seededOn(t testing.TB, engine string) *env { return seededWith(t, engine, false) }

// seededMode is seeded, with per-project networks when perProject.
func seededMode(t testing.TB, perProject bool) *env { return seededWith(t, "sqlite", perProject) }

// seededWith is seeded with the state database on engine, with
// per-project networks when perProject.
func seededWith(t testing.TB, engine string, perProject bool) *env {
	t.Helper()
	dir := envDir(t, engine)
	if perProject {
		setPerProject(t, dir)
	}
	e := openEnv(t, dir)
	e.seed()
	return e
}

func (e *env) seed() {
	ctx := context.Background()
	for _, p := range []string{"tenant-a", "tenant-b", "bmi_infra"} {
		e.must(e.svc.CreateProject(ctx, admin, p))
	}
	e.images.Create("golden", "debian-12", 1<<30)
	e.must(e.svc.ImportImage(ctx, admin, "tenant-a", "golden", core.ImportOptions{Name: "debian"}))
}

func (e *env) must(_ any, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) ok(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// state is a digest of everything BMI owns: rows, Ceph images with their
// snapshots and parents (by row name, not id), targets, boot configs and
// files. Two runs that did the same thing have the same state.
func (e *env) state() string {
	e.t.Helper()
	ctx := context.Background()
	rows, err := e.db.Images(ctx, core.ImageFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	label := map[string]string{}
	var lines []string
	for _, r := range rows {
		label[r.CephName] = r.Project + "/" + r.Name
	}
	name := func(n string) string {
		if l, ok := label[n]; ok {
			return l
		}
		return n
	}
	for _, r := range rows {
		lines = append(lines, fmt.Sprintf("row %s/%s %s %s parent=%s", r.Project, r.Name, r.Kind, r.State, r.Parent))
	}
	for n, im := range e.images.Images {
		var snaps []string
		for _, s := range im.SnapOrder {
			snaps = append(snaps, fmt.Sprintf("%s(protected=%v,kids=%d)", s, im.Snaps[s].Protected, len(im.Snaps[s].Children)))
		}
		p, s, _ := strings.Cut(im.Parent, "@")
		lines = append(lines, fmt.Sprintf("rbd %s data=%s parent=%s@%s snaps=%v", name(n), im.Data, name(p), s, snaps))
	}
	projects, err := e.db.Projects(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range projects {
		lines = append(lines, "project "+p.Name)
	}
	ts, _ := e.db.Targets(ctx)
	for _, t := range ts {
		d, _ := e.db.ImageByID(ctx, t.DiskID)
		lines = append(lines, fmt.Sprintf("target of %s/%s initiators=%v", d.Project, d.Name, t.Initiators))
	}
	leases, _ := e.db.Leases(ctx)
	for _, l := range leases {
		lines = append(lines, fmt.Sprintf("lease %s %s %s", l.MAC, l.IP, l.Hostname))
	}
	for iqn, spec := range e.exp.Targets {
		lines = append(lines, fmt.Sprintf("exported %s of %s", strings.TrimPrefix(iqn, "iqn.2026-11.org.bmi"), name(spec.CephName)))
	}
	boots, _ := e.db.Boots(ctx, "", 0)
	for _, b := range boots {
		owned := ""
		if b.OwnedDiskID != 0 {
			d, _ := e.db.ImageByID(ctx, b.OwnedDiskID)
			owned = d.Project + "/" + d.Name
		}
		lines = append(lines, fmt.Sprintf("boot %s → %s/%s via %s owns=%v owned=%s attached=%v", b.Node, b.Project, b.Disk, b.MAC, b.OwnsDisk, owned, b.Attached))
	}
	nodes, _ := e.files.Nodes(ctx)
	for _, n := range nodes {
		lines = append(lines, "bootfile "+n)
	}
	for k, v := range e.nets.On {
		lines = append(lines, "network "+k+" on "+v)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// checkConsistent asserts the invariants that must hold whenever no
// operation runs: nothing unfinished, no orphan or temporary Ceph object,
// and database, Ceph, targets and boot files agree.
func (e *env) checkConsistent() {
	e.t.Helper()
	ctx := context.Background()
	for _, st := range []core.OpState{core.OpRunning, core.OpFailed} {
		ops, err := e.db.Ops(ctx, st, 0)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, op := range ops {
			e.t.Errorf("operation %s (%s) is %s: %s", op.ID, op.Kind, op.State, op.Error)
		}
	}
	rows, _ := e.db.Images(ctx, core.ImageFilter{})
	owned := map[string]bool{}
	for _, r := range rows {
		owned[r.CephName] = true
		if r.State != core.StateReady {
			e.t.Errorf("row %s/%s is %s", r.Project, r.Name, r.State)
		}
		im, ok := e.images.Images[r.CephName]
		if !ok {
			e.t.Errorf("row %s/%s has no Ceph image %s", r.Project, r.Name, r.CephName)
			continue
		}
		if r.Kind != core.KindDisk && (im.Snaps["bmi-snap"] == nil || !im.Snaps["bmi-snap"].Protected) {
			e.t.Errorf("%s %s/%s has no protected bmi-snap", r.Kind, r.Project, r.Name)
		}
		if r.Kind == core.KindDisk {
			if _, err := e.db.Target(ctx, r.ID); err != nil {
				e.t.Errorf("disk %s/%s has no target: %v", r.Project, r.Name, err)
			}
		}
	}
	for n, im := range e.images.Images {
		if (strings.HasPrefix(n, uid+"img") || strings.HasPrefix(n, uid+"tmp")) && !owned[n] {
			e.t.Errorf("orphan Ceph image %s", n)
		}
		for s := range im.Snaps {
			if strings.HasPrefix(s, "bmi-import-") || strings.HasPrefix(s, "bmi-snap-") {
				e.t.Errorf("temporary snapshot %s@%s left behind", n, s)
			}
		}
	}
	ts, _ := e.db.Targets(ctx)
	var want []string
	for _, t := range ts {
		want = append(want, t.IQN)
	}
	sort.Strings(want)
	got, _ := e.exp.Exported(ctx)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		e.t.Errorf("exported targets %v, database has %v", got, want)
	}
	boots, _ := e.db.Boots(ctx, "", 0)
	var bn []string
	for _, b := range boots {
		bn = append(bn, b.Node)
	}
	files, _ := e.files.Nodes(ctx)
	if strings.Join(files, ",") != strings.Join(bn, ",") {
		e.t.Errorf("boot files for %v, boot configs for %v", files, bn)
	}
	// A node BMI attached (pro, set-boot) is on the provisioning network;
	// no other NIC is. Every site of the harness has a provisioning
	// network, so every boot config is attached.
	onNet := map[string]bool{}
	for _, b := range boots {
		if !b.Attached {
			e.t.Errorf("boot config of node %s is not attached to the provisioning network", b.Node)
		}
		if b.OwnedDiskID != 0 {
			if _, err := e.db.ImageByID(ctx, b.OwnedDiskID); err != nil {
				e.t.Errorf("node %s owns disk #%d: %v", b.Node, b.OwnedDiskID, err)
			}
		}
		if b.Attached {
			onNet[b.Node+"/"+b.NIC] = true
		}
	}
	for k := range e.nets.On {
		if !onNet[k] {
			e.t.Errorf("NIC %s is on the provisioning network but not provisioned", k)
		}
	}
	for _, b := range boots {
		k := b.Node + "/" + b.NIC
		want := "bmi-provision"
		if e.perProject {
			want, _ = e.db.ProjectNetwork(ctx, b.Project)
			if e.nets.Nets[want] == "" {
				e.t.Errorf("provisioning network %q of project %s was not created in HIL", want, b.Project)
			}
		}
		if onNet[k] && e.nets.On[k] != want {
			e.t.Errorf("provisioned NIC %s is on network %q, not its provisioning network %q", k, e.nets.On[k], want)
		}
	}
}

func wantKind(t testing.TB, err error, k fault.Kind) {
	t.Helper()
	if fault.Of(err) != k {
		t.Fatalf("error %v is of kind %q, want %q", err, fault.Of(err), k)
	}
}

// tables dumps every table of the state database, every column of every
// row, in a stable order: a call that was refused must leave it unchanged
// byte for byte (operations and their journal included, and any table a
// later migration adds).
func (e *env) tables() string {
	e.t.Helper()
	ctx := context.Background()
	db := e.db.SQL()
	list := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`
	if e.db.Engine() == "postgres" {
		list = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`
	}
	names, err := db.QueryContext(ctx, list)
	if err != nil {
		e.t.Fatal(err)
	}
	var tables []string
	for names.Next() {
		var n string
		if err := names.Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		tables = append(tables, n)
	}
	names.Close()
	if len(tables) < 7 {
		e.t.Fatalf("the state database has only the tables %v", tables)
	}
	var out []string
	for _, tb := range tables {
		rows, err := db.QueryContext(ctx, `SELECT * FROM "`+tb+`"`)
		if err != nil {
			e.t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				e.t.Fatal(err)
			}
			line := tb
			for i, c := range cols {
				line += fmt.Sprintf(" %s=%v", c, vals[i])
			}
			lines = append(lines, line)
		}
		rows.Close()
		sort.Strings(lines)
		out = append(out, fmt.Sprintf("table %s: %d rows", tb, len(lines)))
		out = append(out, lines...)
	}
	return strings.Join(out, "\n")
}
