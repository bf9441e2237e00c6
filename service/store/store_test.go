package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

func TestMigrateAndReopen(t *testing.T) { eachEngine(t, testMigrateAndReopen) }

func testMigrateAndReopen(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	if v, err := s.SchemaVersion(ctx); err != nil || v != latestMigration(t) {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, latestMigration(t))
	}
	if _, err := s.CreateProject(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = d.open(t) // migrating again is a no-op
	if _, err := s.Project(ctx, "p"); err != nil {
		t.Fatalf("data lost across reopen: %v", err)
	}
	if s.Engine() != d.engine {
		t.Fatalf("Engine() = %q, want %q", s.Engine(), d.engine)
	}
	if d.engine != "sqlite" {
		return
	}
	var fk int
	if err := s.db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v", fk, err)
	}
	var mode string
	if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
}

func TestImagesTargetsBoots(t *testing.T) { eachEngine(t, testImagesTargetsBoots) }

func testImagesTargetsBoots(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	if _, err := s.CreateProject(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateProject(ctx, "p"); fault.Of(err) != fault.Exists {
		t.Fatalf("duplicate project: %v", err)
	}
	img, err := s.InsertImage(ctx, core.Image{Project: "p", Name: "deb", Kind: core.KindImage, State: core.StateReady}, "u1")
	if err != nil || img.CephName != "u1img1" || img.ID != 1 {
		t.Fatalf("InsertImage = %+v, %v", img, err)
	}
	if _, err := s.InsertImage(ctx, core.Image{Project: "p", Name: "deb", Kind: core.KindImage, State: core.StateReady}, "u1"); fault.Of(err) != fault.Exists {
		t.Fatalf("duplicate image: %v", err)
	}
	if _, err := s.InsertImage(ctx, core.Image{Project: "nope", Name: "x", Kind: core.KindImage, State: core.StateReady}, "u1"); fault.Of(err) != fault.NotFound {
		t.Fatalf("image in unknown project: %v", err)
	}
	disk, err := s.InsertImage(ctx, core.Image{Project: "p", Name: "d", Kind: core.KindDisk, ParentID: img.ID, State: core.StatePending, OpID: "op1"}, "u1")
	if err != nil || disk.Parent != "deb" || disk.OpID != "op1" || disk.CephName == "u1img1" {
		t.Fatalf("disk = %+v, %v", disk, err)
	}
	if err := s.DeleteImage(ctx, img.ID); fault.Of(err) != fault.Conflict {
		t.Fatalf("deleting a parent: %v", err)
	}
	if err := s.PutTarget(ctx, core.Target{DiskID: disk.ID, IQN: "iqn.x:1", CHAPUser: "u", CHAPSecret: "s", Initiators: []string{"iqn.i"}}); err != nil {
		t.Fatal(err)
	}
	tg, err := s.Target(ctx, disk.ID)
	if err != nil || tg.Initiators[0] != "iqn.i" || tg.CHAPSecret != "s" {
		t.Fatalf("Target = %+v, %v", tg, err)
	}
	if err := s.PutBoot(ctx, core.BootConfig{Node: "n1", Project: "p", DiskID: disk.ID, NIC: "eth0", MAC: "52:54:00:00:00:01", OwnsDisk: true}); err != nil {
		t.Fatal(err)
	}
	b, err := s.BootByMAC(ctx, "52:54:00:00:00:01")
	if err != nil || b.Node != "n1" || b.Disk != "d" || !b.OwnsDisk {
		t.Fatalf("BootByMAC = %+v, %v", b, err)
	}
	if err := s.PutBoot(ctx, core.BootConfig{Node: "n2", Project: "p", DiskID: disk.ID, NIC: "eth0", MAC: "52:54:00:00:00:01"}); fault.Of(err) != fault.Exists {
		t.Fatalf("two nodes with one MAC: %v", err)
	}
	if err := s.MoveImage(ctx, disk.ID, "p", "d2", true); err != nil {
		t.Fatal(err)
	}
	if moved, _ := s.ImageByID(ctx, disk.ID); moved.Name != "d2" || moved.ParentID != 0 || moved.Kind != core.KindImage {
		t.Fatalf("moved = %+v", moved)
	}
	if err := s.DeleteProject(ctx, "p"); fault.Of(err) != fault.Conflict {
		t.Fatalf("deleting a project that owns rows: %v", err)
	}
	l := core.Lease{MAC: "52:54:00:00:00:01", IP: "10.0.0.5", Expires: time.Now().Add(time.Hour)}
	if err := s.PutLease(ctx, l); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LeaseByMAC(ctx, l.MAC); err != nil || got.IP != "10.0.0.5" {
		t.Fatalf("LeaseByMAC = %+v, %v", got, err)
	}
	if _, err := s.LeaseByMAC(ctx, "52:54:00:00:00:09"); fault.Of(err) != fault.NotFound {
		t.Fatalf("missing lease: %v", err)
	}
}

func TestJournal(t *testing.T) { eachEngine(t, testJournal) }

func testJournal(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	op := core.Operation{ID: "op1", Kind: "import", Project: "p", State: core.OpRunning, Data: json.RawMessage(`{"a":"1"}`)}
	if err := s.CreateOp(ctx, op); err != nil {
		t.Fatal(err)
	}
	for _, st := range []core.StepState{core.StepDoing, core.StepDone} {
		if err := s.MarkStep(ctx, "op1", 0, "insert row", st); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkStep(ctx, "op1", 1, "clone", core.StepDoing); err != nil {
		t.Fatal(err)
	}
	if err := s.SetOpData(ctx, "op1", json.RawMessage(`{"a":"1","b":"2"}`)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Op(ctx, "op1")
	if err != nil || len(got.Steps) != 2 || got.Steps[0].State != core.StepDone || got.Steps[1].State != core.StepDoing || string(got.Data) != `{"a":"1","b":"2"}` {
		t.Fatalf("Op = %+v, %v", got, err)
	}
	if err := s.SetOpState(ctx, "op1", core.OpDone, ""); err != nil {
		t.Fatal(err)
	}
	if running, _ := s.Ops(ctx, core.OpRunning, 0); len(running) != 0 {
		t.Fatalf("running = %+v", running)
	}
	if err := s.SetOpState(ctx, "nope", core.OpDone, ""); fault.Of(err) != fault.NotFound {
		t.Fatalf("unknown op: %v", err)
	}
}

// FuzzJournalDecode: whatever is in an operation's data column, reading
// the journal returns an error or an operation, never a panic.
func FuzzJournalDecode(f *testing.F) {
	f.Add(`{"a":"1"}`)
	f.Add(`null`)
	f.Add(`{"a":1}`)
	f.Add(`[`)
	s, err := Open(context.Background(), ":memory:", logging.Discard())
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateOp(context.Background(), core.Operation{ID: "f", Kind: "k", State: core.OpRunning}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data string) {
		if _, err := s.db.ExecContext(context.Background(), `UPDATE operations SET data = ? WHERE id = 'f'`, data); err != nil {
			t.Fatal(err)
		}
		op, err := s.Op(context.Background(), "f")
		if err == nil && op.Data == nil {
			t.Fatal("nil data without an error")
		}
	})
}

func TestAudit(t *testing.T) { eachEngine(t, testAudit) }

func testAudit(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	for i, e := range []AuditEntry{
		{Kind: "api", Actor: "alice", Source: "10.0.0.1", Action: "PUT /api/v1/projects/p/targets/d", Object: "d", Outcome: "200"},
		{Kind: "iscsi", Actor: "iqn.2026-11.org.x:n1", Source: "10.0.0.9", Action: "login", Object: "iqn.t", Outcome: "refused", Detail: strings.Repeat("x", 2000)},
		{Kind: "iscsi", Actor: "iqn.2026-11.org.x:n1", Source: "10.0.0.2", Action: "login", Object: "iqn.t", Outcome: "ok"},
	} {
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatalf("AppendAudit #%d: %v", i, err)
		}
	}
	all, err := s.Audit(ctx, AuditFilter{})
	if err != nil || len(all) != 3 || all[0].Outcome != "ok" || all[2].Actor != "alice" || all[0].At.IsZero() {
		t.Fatalf("Audit() = %+v, %v", all, err)
	}
	if len(all[1].Detail) != maxAuditText {
		t.Errorf("detail of %d bytes kept, want it clipped to %d", len(all[1].Detail), maxAuditText)
	}
	got, err := s.Audit(ctx, AuditFilter{Kind: "iscsi", Source: "10.0.0.9"})
	if err != nil || len(got) != 1 || got[0].Outcome != "refused" {
		t.Fatalf("Audit(iscsi from 10.0.0.9) = %+v, %v", got, err)
	}
	if got, _ := s.Audit(ctx, AuditFilter{Limit: 1}); len(got) != 1 {
		t.Fatalf("Audit(limit 1) = %d entries", len(got))
	}
	if n, err := s.PruneAudit(ctx, 2); err != nil || n != 1 {
		t.Fatalf("PruneAudit(2) = %d, %v; want 1 deleted", n, err)
	}
	if got, _ := s.Audit(ctx, AuditFilter{}); len(got) != 2 || got[1].Outcome != "refused" {
		t.Fatalf("after PruneAudit(2): %+v, want the 2 newest", got)
	}
}

// latestMigration is the number of the newest embedded migration.
func latestMigration(t *testing.T) int64 {
	ents, err := migrations.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		var v int64
		if _, err := fmt.Sscanf(e.Name(), "%05d_", &v); err == nil && v > n {
			n = v
		}
	}
	return n
}

func TestProjectTargetsAndDiskBoots(t *testing.T) { eachEngine(t, testProjectTargetsAndDiskBoots) }

// testProjectTargetsAndDiskBoots: the per-project listings (one query
// each for a disk list) return exactly the project's disks' targets, and
// the boot configs that boot its disks, whatever project they are in.
func testProjectTargetsAndDiskBoots(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	disk := map[string]int64{}
	for _, p := range []string{"p", "q"} {
		if _, err := s.CreateProject(ctx, p); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"d1", "d2"} {
			im, err := s.InsertImage(ctx, core.Image{Project: p, Name: n, Kind: core.KindDisk, State: core.StateReady}, "u1")
			if err != nil {
				t.Fatal(err)
			}
			disk[p+"/"+n] = im.ID
			if err := s.PutTarget(ctx, core.Target{DiskID: im.ID, IQN: fmt.Sprintf("iqn.x:%d", im.ID), CHAPUser: "u", CHAPSecret: "s" + p + n}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, b := range []struct{ node, project, disk string }{{"n1", "p", "p/d1"}, {"n2", "q", "p/d1"}, {"n3", "q", "q/d2"}} {
		if err := s.PutBoot(ctx, core.BootConfig{Node: b.node, Project: b.project, DiskID: disk[b.disk], NIC: "eth0", MAC: fmt.Sprintf("52:54:00:00:00:%02x", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := s.ProjectTargets(ctx, "p")
	if err != nil || len(ts) != 2 || ts[0].DiskID != disk["p/d1"] || ts[1].DiskID != disk["p/d2"] || ts[0].CHAPSecret != "spd1" {
		t.Fatalf("ProjectTargets(p) = %+v, %v; want p's two disks' targets, secrets opened", ts, err)
	}
	var got []string
	bs, err := s.DiskBoots(ctx, "p")
	for _, b := range bs {
		got = append(got, fmt.Sprintf("%s:%d", b.Node, b.DiskID))
	}
	if want := []string{fmt.Sprintf("n1:%d", disk["p/d1"]), fmt.Sprintf("n2:%d", disk["p/d1"])}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("DiskBoots(p) = %v, %v; want %v", got, err, want)
	}
	if bs, err := s.DiskBoots(ctx, "q"); err != nil || len(bs) != 1 || bs[0].Node != "n3" {
		t.Fatalf("DiskBoots(q) = %+v, %v; want n3 only", bs, err)
	}
	if ts, err := s.ProjectTargets(ctx, "none"); err != nil || len(ts) != 0 {
		t.Fatalf("ProjectTargets(none) = %+v, %v; want nothing", ts, err)
	}
	iqn := fmt.Sprintf("iqn.x:%d", disk["q/d2"])
	if got, err := s.TargetByIQN(ctx, iqn); err != nil || got.DiskID != disk["q/d2"] || got.CHAPSecret != "sqd2" {
		t.Fatalf("TargetByIQN(%s) = %+v, %v; want q's d2, secret opened", iqn, got, err)
	}
	if _, err := s.TargetByIQN(ctx, "iqn.x:none"); fault.Of(err) != fault.NotFound {
		t.Fatalf("TargetByIQN of no target: %v, want not found", err)
	}
}

func TestChangeInitiators(t *testing.T) { eachEngine(t, testChangeInitiators) }

// testChangeInitiators: concurrent ACL changes of one target, each adding
// a name and removing another's, are all kept (none undoes another), and
// the target's secret and name are untouched.
func testChangeInitiators(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	if _, err := s.CreateProject(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	im, err := s.InsertImage(ctx, core.Image{Project: "p", Name: "d", Kind: core.KindDisk, State: core.StateReady}, "u1")
	if err != nil {
		t.Fatal(err)
	}
	var first []string
	for i := range 16 {
		first = append(first, fmt.Sprintf("iqn.2026-01.x:old%02d", i))
	}
	if err := s.PutTarget(ctx, core.Target{DiskID: im.ID, IQN: "iqn.x:1", CHAPUser: "u", CHAPSecret: "sealed-secret", Initiators: first}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			add := fmt.Sprintf("iqn.2026-01.x:new%02d", i)
			if _, err := s.ChangeInitiators(ctx, im.ID, []string{add}, []string{first[i]}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := s.Target(ctx, im.ID)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 16 {
		want = append(want, fmt.Sprintf("iqn.2026-01.x:new%02d", i))
	}
	if !slices.Equal(got.Initiators, want) || got.CHAPSecret != "sealed-secret" || got.IQN != "iqn.x:1" {
		t.Fatalf("after 16 concurrent changes: %v (secret %q); want %v and the secret kept", got.Initiators, got.CHAPSecret, want)
	}
	if _, err := s.ChangeInitiators(ctx, im.ID+100, []string{"iqn.2026-01.x:a"}, nil); fault.Of(err) != fault.NotFound {
		t.Fatalf("change of a missing target: %v, want not found", err)
	}
	// A secret rotation changes the secret only.
	if err := s.SetCHAPSecret(ctx, im.ID, "rotated-secret"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Target(ctx, im.ID); err != nil || got.CHAPSecret != "rotated-secret" || !slices.Equal(got.Initiators, want) {
		t.Fatalf("after SetCHAPSecret: %+v, %v; want the new secret and the ACL kept", got, err)
	}
	if err := s.SetCHAPSecret(ctx, im.ID+100, "x"); fault.Of(err) != fault.NotFound {
		t.Fatalf("secret of a missing target: %v, want not found", err)
	}
}
