//go:build ceph_preview

package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/pgtest"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/logging"
)

// The crash tests of service/core kill every operation at every journal
// point against fakes; these kill every operation that touches Ceph, the
// iSCSI target or HIL against the real ones: just before and just after each
// such step acts (before the journal says so), and at wall-clock moments
// inside the steps that remove or flatten images (a kill in the middle of an
// rbd removal, not only between calls).

type realScenario struct {
	setup func(ctx context.Context, svc *core.Service, golden string) error
	run   func(ctx context.Context, svc *core.Service, golden string) error
	// only, when set, limits the kill points to these steps (the rest of
	// the recipe is killed in another scenario).
	only map[string]bool
}

// realScenarios are the operations the real crash test kills, by name.
func realScenarios() map[string]realScenario {
	project := func(ctx context.Context, svc *core.Service, _ string) error {
		_, err := svc.CreateProject(ctx, admin, "tenant-a")
		return err
	}
	imp := func(ctx context.Context, svc *core.Service, golden string) error {
		if err := project(ctx, svc, golden); err != nil {
			return err
		}
		_, err := svc.ImportImage(ctx, admin, "tenant-a", golden, core.ImportOptions{Name: "debian"})
		return err
	}
	prov := func(ctx context.Context, svc *core.Service, _ string) error {
		_, err := svc.Provision(ctx, alice, "tenant-a", "node-01", "debian", "eth0")
		return err
	}
	provisioned := func(ctx context.Context, svc *core.Service, g string) error {
		if err := imp(ctx, svc, g); err != nil {
			return err
		}
		return prov(ctx, svc, g)
	}
	disk := func(ctx context.Context, svc *core.Service, _ string) error {
		_, err := svc.CreateDisk(ctx, alice, "tenant-a", "debian", "disk-a")
		return err
	}
	withDisk := func(ctx context.Context, svc *core.Service, g string) error {
		if err := imp(ctx, svc, g); err != nil {
			return err
		}
		return disk(ctx, svc, g)
	}
	return map[string]realScenario{
		"import": {setup: project, run: func(ctx context.Context, svc *core.Service, golden string) error {
			_, err := svc.ImportImage(ctx, admin, "tenant-a", golden, core.ImportOptions{Name: "debian"})
			return err
		}},
		"provision": {setup: imp, run: prov},
		"deprovision": {setup: provisioned, run: func(ctx context.Context, svc *core.Service, _ string) error {
			return svc.Deprovision(ctx, alice, "tenant-a", "node-01", "eth0")
		}},
		// A snapshot is the import recipe on a disk: import is killed at
		// every step; here the steps that act on the disk itself.
		"snapshot": {setup: withDisk, run: func(ctx context.Context, svc *core.Service, _ string) error {
			_, err := svc.CreateSnapshot(ctx, alice, "tenant-a", "disk-a", "snap1")
			return err
		}, only: map[string]bool{"snapshot source": true, "protect source snapshot": true, "remove source snapshot": true}},
		"remove": {setup: imp, run: func(ctx context.Context, svc *core.Service, _ string) error {
			return svc.RemoveImage(ctx, alice, "tenant-a", "debian")
		}},
		"copy": {setup: imp, run: func(ctx context.Context, svc *core.Service, _ string) error {
			_, err := svc.CopyImage(ctx, alice, "tenant-a", "debian", "tenant-a", "debian-copy")
			return err
		}},
		"create disk": {setup: imp, run: disk},
		// Export and upload: the steps only they have (clone and flatten
		// are killed in copy and import).
		"export": {setup: imp, run: func(ctx context.Context, svc *core.Service, golden string) error {
			return svc.ExportImage(ctx, admin, "tenant-a", "debian", golden+"-out")
		}, only: map[string]bool{"flatten": true, "rename": true}},
		"upload": {setup: project, run: func(ctx context.Context, svc *core.Service, _ string) error {
			body := bytes.Repeat([]byte("bmi-upload "), 4<<20/11)
			_, err := svc.UploadImage(ctx, alice, "tenant-a", "uploaded", bytes.NewReader(body), uint64(len(body)))
			return err
		}, only: map[string]bool{"write image": true}},
		"delete disk": {setup: withDisk, run: func(ctx context.Context, svc *core.Service, _ string) error {
			return svc.DeleteDisk(ctx, alice, "tenant-a", "disk-a")
		}},
	}
}

// externalSteps are the steps that act on Ceph, the iSCSI target or HIL:
// the real crash test kills just before and just after each acts.
var externalSteps = map[string]bool{
	"snapshot source": true, "protect source snapshot": true, "clone": true, "flatten": true,
	"snapshot and protect": true, "remove source snapshot": true, "export": true, "unexport": true,
	"unprotect snapshot": true, "remove from ceph": true, "connect network": true, "detach network": true,
	"rename": true, "write image": true,
}

// timedSteps are the steps the test also kills at wall-clock moments after
// they start, to land inside a Ceph call: at timedFractions of the time the
// step took in the reference run.
var (
	timedSteps     = map[string]bool{"flatten": true, "remove from ceph": true, "remove source snapshot": true, "write image": true}
	timedFractions = []float64{0.4, 0.8}
)

// realKillPoints picks the kill points of a reference run (every journal
// point, "kind:seq:phase"): before ("doing") and after ("acted") each
// external step, wall-clock points inside the timed ones, and the last
// point (all steps done, the operation not yet marked done). The other
// journal points differ only in the journal, which service/core's crash
// tests cover at every point.
func realKillPoints(points []string, took map[string]time.Duration, names map[string][]string, only map[string]bool) []string {
	var out []string
	for i, p := range points {
		parts := strings.Split(p, ":")
		seq, _ := strconv.Atoi(parts[1])
		steps := names[parts[0]]
		if seq >= len(steps) {
			continue
		}
		step := steps[seq]
		doing := strings.Join(parts[:2], ":") + ":doing"
		// A step that took under a millisecond had nothing to do (a copy
		// has no temporary snapshot to take): only the journal differs.
		acts := externalSteps[step] && took[doing] >= time.Millisecond && (only == nil || only[step])
		switch {
		case i == len(points)-1:
			out = append(out, p)
		case parts[2] == "acted" && acts:
			out = append(out, p)
		case parts[2] == "doing" && acts:
			out = append(out, p)
			if timedSteps[step] {
				for _, f := range timedFractions {
					d := time.Duration(f * float64(took[p])).Round(100 * time.Microsecond)
					out = append(out, fmt.Sprintf("%s+%s", p, max(d, 100*time.Microsecond)))
				}
			}
		}
	}
	return out
}

// TestCrashRealChild runs one scenario's operation on the site described
// by BMI_RCRASH_CONFIG and SIGKILLs itself at BMI_RCRASH_AT: a journal
// point, or "point+delay", that long after the point.
func TestCrashRealChild(t *testing.T) {
	path := os.Getenv("BMI_RCRASH_CONFIG")
	if path == "" {
		t.Skip("run by TestCrashReal")
	}
	var cfg config.Config
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &cfg) != nil {
		t.Fatalf("config: %v", err)
	}
	d, err := New(context.Background(), cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	at, delay := os.Getenv("BMI_RCRASH_AT"), time.Duration(0)
	if p, ds, ok := strings.Cut(at, "+"); ok {
		at = p
		if delay, err = time.ParseDuration(ds); err != nil {
			t.Fatal(err)
		}
	}
	kill := func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	armed := make(chan struct{})
	d.svc.SetCrashHook(func(kind string, seq int, phase string) {
		if fmt.Sprintf("%s:%d:%s", kind, seq, phase) != at {
			return
		}
		if delay == 0 {
			kill()
		}
		time.AfterFunc(delay, kill)
		close(armed)
	})
	err = realScenarios()[os.Getenv("BMI_RCRASH_SCENARIO")].run(context.Background(), d.svc, os.Getenv("BMI_RCRASH_GOLDEN"))
	select {
	case <-armed:
		// The operation ended before the moment (this run was faster than
		// the reference): the kill still comes, after it.
		time.Sleep(delay + time.Minute)
	default:
	}
	fmt.Printf("CHILD-COMPLETED err=%v\n", err)
}

// realState lists what BMI owns in the database and in Ceph, by name:
// rows, projects, targets and boot configs; images (those in the trash too)
// with their parents and their snapshots in every namespace (the trash
// namespace too). It fails the test when the pool cannot be listed in long
// form (a half-removed image breaks "rbd ls -l").
func realState(t *testing.T, d *Daemon, conf, pool, golden string) string {
	ctx := context.Background()
	var lines []string
	rows, err := d.db.Images(ctx, core.ImageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	label := map[string]string{golden: "golden", golden + "-out": "golden-out"}
	for _, r := range rows {
		label[r.CephName] = r.Project + "/" + r.Name
		lines = append(lines, fmt.Sprintf("row %s/%s %s %s", r.Project, r.Name, r.Kind, r.State))
	}
	name := func(n string) string {
		if l, ok := label[n]; ok {
			return l
		}
		return n
	}
	projects, _ := d.db.Projects(ctx)
	for _, p := range projects {
		lines = append(lines, "project "+p.Name)
	}
	// Other packages' tests share the pool: only this site's images count.
	if _, err := cephtest.RBD(conf, pool, "ls", "-l"); err != nil && strings.Contains(err.Error(), d.cfg.UID) {
		t.Errorf("rbd ls -l fails on an image of this site (half removed?): %v", err)
	}
	for _, n := range strings.Fields(rbd(t, conf, pool, "ls")) {
		if !strings.HasPrefix(n, d.cfg.UID) && n != golden {
			continue
		}
		info, err := cephtest.RBD(conf, pool, "info", "--format", "json", n)
		if err != nil {
			lines = append(lines, fmt.Sprintf("rbd %s cannot be opened: %v", name(n), err))
			continue
		}
		var im struct {
			Parent struct{ Image, Snapshot string } `json:"parent"`
		}
		_ = json.Unmarshal([]byte(info), &im)
		var snaps []struct {
			Name      string `json:"name"`
			Protected string `json:"protected"`
			Namespace struct {
				Type string `json:"type"`
			} `json:"namespace"`
		}
		_ = json.Unmarshal([]byte(rbd(t, conf, pool, "snap", "ls", "--all", "--format", "json", n)), &snaps)
		var sl []string
		for _, sn := range snaps {
			if strings.HasPrefix(sn.Name, "bmi-") && sn.Name != "bmi-snap" {
				t.Errorf("temporary snapshot left on %s: %s", name(n), sn.Name)
			}
			if sn.Namespace.Type != "" && sn.Namespace.Type != "user" {
				t.Errorf("snapshot of %s in the %s namespace: %s", name(n), sn.Namespace.Type, sn.Name)
			}
			sl = append(sl, fmt.Sprintf("%s(%s,protected=%s)", sn.Name, sn.Namespace.Type, sn.Protected))
		}
		sort.Strings(sl)
		lines = append(lines, fmt.Sprintf("rbd %s parent=%s@%s snaps=%v", name(n), name(im.Parent.Image), im.Parent.Snapshot, sl))
	}
	// The trash: "rbd trash ls --all" leaves out images a removal moved
	// there (source "removing"); the trash directory object has them all.
	if trash, err := exec.Command("rados", "--conf", conf, "--pool", pool, "listomapvals", "rbd_trash").Output(); err == nil &&
		strings.Contains(string(trash), d.cfg.UID) {
		t.Errorf("images of this site in the pool's trash:\n%s", trash)
	}
	ts, _ := d.db.Targets(ctx)
	live, _ := exporter{target: d.target, images: d.ceph}.Exported(ctx)
	if len(ts) != len(live) {
		t.Errorf("database has %d targets, the iSCSI target exports %d", len(ts), len(live))
	}
	for _, tg := range ts {
		im, _ := d.db.ImageByID(ctx, tg.DiskID)
		lines = append(lines, "target of "+im.Project+"/"+im.Name)
	}
	boots, _ := d.db.Boots(ctx, "", 0)
	for _, b := range boots {
		lines = append(lines, "boot "+b.Node+" "+b.Disk)
	}
	ops, _ := d.db.Ops(ctx, core.OpRunning, 0)
	failed, _ := d.db.Ops(ctx, core.OpFailed, 0)
	if len(ops)+len(failed) > 0 {
		t.Errorf("unfinished operations after recovery: %d running, %d failed", len(ops), len(failed))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestCrashReal kills every operation that touches Ceph at the points
// realKillPoints picks (SIGKILL, in a child bmid), recovers, and checks that
// the result is the state before or after the operation, that nothing of
// the site is left half removed or in the trash, that an operation rolled
// back can run again, and that BMI can then remove everything it made. It
// runs with the state database on SQLite and, for the operations of
// pgRealScenarios, on PostgreSQL, there without the wall-clock points
// inside a Ceph step (they differ from the step's own points only in Ceph,
// which the SQLite run covers).
func TestCrashReal(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) { testCrashReal(t, engine) })
	}
}

// pgRealScenarios are the operations TestCrashReal kills with the state
// on PostgreSQL: provision and deprovision prove bmid's recovery on
// PostgreSQL end to end (its instance lock freed by the dead child's
// session, the journal read back, Ceph and the target brought in line);
// every operation's every journal point runs on PostgreSQL in
// service/core's TestCrash. The full set on both engines would add about
// twelve minutes to make test.
var pgRealScenarios = map[string]bool{"provision": true, "deprovision": true}

func testCrashReal(t *testing.T, engine string) {
	hilURL := startHIL(t)
	conf, pool := cephtest.Cluster(t)
	total, timed := 0, 0
	names := make([]string, 0)
	for n := range realScenarios() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if engine == "postgres" && !pgRealScenarios[name] {
			continue
		}
		sc := realScenarios()[name]
		t.Run(name, func(t *testing.T) {
			// A reference run records the journal points and the states
			// before and after.
			ref := newRealSite(t, engine, hilURL, conf, pool, sc)
			before := realState(t, ref.d, conf, pool, ref.golden)
			var all []string
			took, started := map[string]time.Duration{}, map[string]time.Time{}
			ref.d.svc.SetCrashHook(func(kind string, seq int, phase string) {
				p := fmt.Sprintf("%s:%d:%s", kind, seq, phase)
				all = append(all, p)
				doing := fmt.Sprintf("%s:%d:doing", kind, seq)
				switch phase {
				case "doing":
					started[doing] = time.Now()
				case "acted":
					took[doing] = time.Since(started[doing])
				}
			})
			if err := sc.run(context.Background(), ref.d.svc, ref.golden); err != nil {
				t.Fatal(err)
			}
			ref.d.svc.SetCrashHook(nil)
			after := realState(t, ref.d, conf, pool, ref.golden)
			points := realKillPoints(all, took, ref.d.svc.Kinds(), sc.only)
			if engine == "postgres" {
				points = slices.DeleteFunc(points, func(p string) bool { return strings.Contains(p, "+") })
			}
			ref.teardown()
			total += len(points)
			t.Logf("%d kill points of %d journal points: %v", len(points), len(all), points)
			for _, p := range points {
				if strings.Contains(p, "+") {
					timed++
				}
				t.Run(p, func(t *testing.T) {
					s := newRealSite(t, engine, hilURL, conf, pool, sc)
					s.d.close()
					headers := s.imageIDs()
					cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRealChild$", "-test.v")
					cmd.Env = append(os.Environ(), "BMI_RCRASH_CONFIG="+s.cfgPath, "BMI_RCRASH_AT="+p,
						"BMI_RCRASH_SCENARIO="+name, "BMI_RCRASH_GOLDEN="+s.golden)
					out, err := cmd.CombinedOutput()
					if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
						t.Fatalf("child not killed at %s: %v\n%s", p, err, out)
					}
					s.fenceDeadClient(headers)
					s.reopen()
					got := realState(t, s.d, conf, pool, s.golden)
					if got != before && got != after {
						t.Fatalf("after a crash at %s:\n%s\n--- before:\n%s\n--- after:\n%s", p, got, before, after)
					}
					if got == before {
						// Rolled back: nothing may stand in the way of running it again.
						if err := sc.run(context.Background(), s.d.svc, s.golden); err != nil {
							t.Errorf("the operation rolled back at %s fails when run again: %v", p, err)
						}
					}
					s.teardown()
				})
			}
		})
	}
	t.Logf("kill points tested on real Ceph: %d (%d at wall-clock moments inside a step)", total, timed)
}

type realSite struct {
	t       *testing.T
	cfg     config.Config
	cfgPath string
	d       *Daemon
	golden  string
	conf    string
	pool    string
}

// newRealSite makes a site with its state database on engine ("sqlite" or
// "postgres", a database of its own in the test server).
func newRealSite(t *testing.T, engine, hilURL, conf, pool string, sc realScenario) *realSite {
	dir := t.TempDir()
	s := &realSite{t: t, cfg: siteConfig(t, newUID(t), hilURL, dir), conf: conf, pool: pool}
	if engine == "postgres" {
		s.cfg.State = config.State{Engine: "postgres", DSN: pgtest.Database(t)}
		s.cfg.Security.KeyFile = filepath.Join(dir, "secret.key")
	}
	s.golden = s.cfg.UID + "-golden"
	rbd(t, conf, pool, "create", "--size", "16M", "--object-size", "1M", s.golden)
	// Data in every object, so that flattening and removing a copy take a
	// while (the wall-clock kill points land inside them).
	rbd(t, conf, pool, "bench", "--io-type", "write", "--io-size", "1M", "--io-total", "16M", "--io-pattern", "seq", s.golden)
	t.Cleanup(func() {
		cephtest.RBD(conf, pool, "rm", s.golden+"-out") // an export's destination, when the scenario made one
		cephtest.RBD(conf, pool, "rm", s.golden)
	})
	b, _ := json.Marshal(s.cfg)
	s.cfgPath = filepath.Join(dir, "cfg.json")
	if err := os.WriteFile(s.cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s.reopen()
	if sc.setup != nil {
		if err := sc.setup(context.Background(), s.d.svc, s.golden); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// fenceDeadClient blocklists the Ceph clients that still watch the site's
// images after the child was killed, as an operator fences a dead gateway:
// otherwise each of their watches lingers until the OSD times it out (30 s),
// and every removal of such an image waits that long (BMI's busy wait,
// covered by the daemon's restart tests). Only this site's images are
// looked at; the parent holds none of them open. The watches are read from
// the header objects of the images the site has now and of those it had
// before the child ran (before), so that an image the child was removing,
// which no longer opens by name, is covered too.
func (s *realSite) fenceDeadClient(before []string) {
	fenced := map[string]bool{}
	for _, id := range append(before, s.imageIDs()...) {
		out, err := exec.Command("rados", "--conf", s.conf, "--pool", s.pool, "listwatchers", "rbd_header."+id).Output()
		if err != nil {
			continue // the header is gone: nobody watches it
		}
		// "watcher=127.0.0.1:0/123456 client.4321 cookie=..."
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !strings.HasPrefix(f[0], "watcher=") {
				continue
			}
			addr := strings.TrimPrefix(f[0], "watcher=")
			if fenced[addr] {
				continue
			}
			fenced[addr] = true
			if out, err := exec.Command("ceph", "--conf", s.conf, "osd", "blocklist", "add", addr).CombinedOutput(); err != nil {
				s.t.Fatalf("blocklist %s: %v\n%s", addr, err, out)
			}
		}
	}
}

// imageIDs returns the RBD ids of the site's images (their header objects
// are rbd_header.<id>).
func (s *realSite) imageIDs() []string {
	out, err := cephtest.RBD(s.conf, s.pool, "ls")
	if err != nil {
		s.t.Fatal(err)
	}
	var ids []string
	for _, n := range strings.Fields(out) {
		if !strings.HasPrefix(n, s.cfg.UID) {
			continue
		}
		info, err := cephtest.RBD(s.conf, s.pool, "info", "--format", "json", n)
		if err != nil {
			continue
		}
		var im struct {
			ID string `json:"id"`
		}
		if json.Unmarshal([]byte(info), &im) == nil && im.ID != "" {
			ids = append(ids, im.ID)
		}
	}
	return ids
}

func (s *realSite) reopen() {
	d, err := New(context.Background(), s.cfg, logging.Discard())
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := d.svc.Start(context.Background()); err != nil {
		s.t.Fatalf("recovery: %v", err)
	}
	s.d = d
}

// teardown removes everything the site made, through BMI, and checks that
// nothing of its uid is left in the pool.
func (s *realSite) teardown() {
	ctx := context.Background()
	if _, err := s.d.svc.Reconcile(ctx, admin, true); err != nil {
		s.t.Error(err)
	}
	projects, _ := s.d.db.Projects(ctx)
	for _, p := range projects {
		if err := s.d.svc.RemoveProject(ctx, admin, p.Name, true); err != nil {
			s.t.Errorf("remove project %s: %v", p.Name, err)
		}
	}
	s.d.close()
	if left := rbd(s.t, s.conf, s.pool, "ls"); strings.Contains(left, s.cfg.UID+"img") || strings.Contains(left, s.cfg.UID+"tmp") {
		s.t.Errorf("left in the pool:\n%s", left)
	}
	if snaps := strings.TrimSpace(rbd(s.t, s.conf, s.pool, "snap", "ls", s.golden)); snaps != "" {
		s.t.Errorf("snapshots left on the golden image:\n%s", snaps)
	}
}
