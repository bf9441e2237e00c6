//go:build ceph_preview

package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/logging"
)

// The crash tests of service/core kill every operation at every journal
// point against fakes; these do it against real Ceph and the real iSCSI
// target for the operations that touch both.

type realScenario struct {
	setup func(ctx context.Context, svc *core.Service, golden string) error
	run   func(ctx context.Context, svc *core.Service, golden string) error
}

func realScenarios() map[string]realScenario {
	imp := func(ctx context.Context, svc *core.Service, golden string) error {
		if _, err := svc.CreateProject(ctx, admin, "tenant-a"); err != nil {
			return err
		}
		_, err := svc.ImportImage(ctx, admin, "tenant-a", golden, core.ImportOptions{Name: "debian"})
		return err
	}
	prov := func(ctx context.Context, svc *core.Service, golden string) error {
		_, err := svc.Provision(ctx, alice, "tenant-a", "node-01", "debian", "eth0")
		return err
	}
	return map[string]realScenario{
		"import": {setup: func(ctx context.Context, svc *core.Service, _ string) error {
			_, err := svc.CreateProject(ctx, admin, "tenant-a")
			return err
		}, run: func(ctx context.Context, svc *core.Service, golden string) error {
			_, err := svc.ImportImage(ctx, admin, "tenant-a", golden, core.ImportOptions{Name: "debian"})
			return err
		}},
		"provision": {setup: imp, run: prov},
		"snapshot": {setup: func(ctx context.Context, svc *core.Service, g string) error {
			if err := imp(ctx, svc, g); err != nil {
				return err
			}
			return prov(ctx, svc, g)
		}, run: func(ctx context.Context, svc *core.Service, _ string) error {
			_, err := svc.CreateSnapshot(ctx, alice, "tenant-a", "node-01", "snap1")
			return err
		}},
		"deprovision": {setup: func(ctx context.Context, svc *core.Service, g string) error {
			if err := imp(ctx, svc, g); err != nil {
				return err
			}
			return prov(ctx, svc, g)
		}, run: func(ctx context.Context, svc *core.Service, _ string) error {
			return svc.Deprovision(ctx, alice, "tenant-a", "node-01", "eth0")
		}},
	}
}

// TestCrashRealChild runs one scenario's operation on the site described
// by BMI_RCRASH_CONFIG and SIGKILLs itself at BMI_RCRASH_AT.
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
	at := os.Getenv("BMI_RCRASH_AT")
	d.svc.SetCrashHook(func(kind string, seq int, phase string) {
		if fmt.Sprintf("%s:%d:%s", kind, seq, phase) == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	})
	err = realScenarios()[os.Getenv("BMI_RCRASH_SCENARIO")].run(context.Background(), d.svc, os.Getenv("BMI_RCRASH_GOLDEN"))
	fmt.Printf("CHILD-COMPLETED err=%v\n", err)
}

// realState lists what BMI owns in the database and in Ceph, by name.
func realState(t *testing.T, d *Daemon, conf, pool, golden string) string {
	ctx := context.Background()
	var lines []string
	rows, err := d.db.Images(ctx, core.ImageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	label := map[string]string{}
	for _, r := range rows {
		label[r.CephName] = r.Project + "/" + r.Name
		lines = append(lines, fmt.Sprintf("row %s/%s %s %s", r.Project, r.Name, r.Kind, r.State))
	}
	for _, n := range strings.Fields(rbd(t, conf, pool, "ls")) {
		if !strings.HasPrefix(n, d.cfg.UID) && n != golden {
			continue
		}
		name, ok := label[n]
		if !ok {
			name = n
		}
		if n == golden {
			name = "golden"
		}
		snaps := strings.Join(strings.Fields(rbd(t, conf, pool, "snap", "ls", "--format", "json", n)), "")
		if strings.Contains(snaps, `"name":"bmi-`) && !strings.Contains(snaps, `"name":"bmi-snap"`) {
			t.Errorf("temporary snapshot left on %s: %s", name, snaps)
		}
		lines = append(lines, fmt.Sprintf("rbd %s snaps=%d", name, strings.Count(snaps, `"name"`)))
	}
	ts, _ := d.db.Targets(ctx)
	live, _ := exporter{target: d.target, images: d.ceph}.Exported(ctx)
	if len(ts) != len(live) {
		t.Errorf("database has %d targets, the iSCSI target exports %d", len(ts), len(live))
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

func TestCrashReal(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	hilURL := startHIL(t)
	conf, pool := cephtest.Cluster(t)
	total := 0
	// The snapshot operation runs the import recipe (copySteps) on a disk;
	// service/core's crash tests kill it at every point against fakes.
	for _, name := range []string{"import", "provision", "deprovision"} {
		sc := realScenarios()[name]
		t.Run(name, func(t *testing.T) {
			// A reference run records the journal points and the states
			// before and after.
			ref := newRealSite(t, hilURL, conf, pool, sc)
			before := realState(t, ref.d, conf, pool, ref.golden)
			var points []string
			ref.d.svc.SetCrashHook(func(kind string, seq int, phase string) {
				points = append(points, fmt.Sprintf("%s:%d:%s", kind, seq, phase))
			})
			if err := sc.run(context.Background(), ref.d.svc, ref.golden); err != nil {
				t.Fatal(err)
			}
			ref.d.svc.SetCrashHook(nil)
			after := realState(t, ref.d, conf, pool, ref.golden)
			ref.teardown()
			total += len(points)
			t.Logf("%d kill points: %v", len(points), points)
			for _, p := range points {
				t.Run(p, func(t *testing.T) {
					s := newRealSite(t, hilURL, conf, pool, sc)
					s.d.close()
					cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRealChild$", "-test.v")
					cmd.Env = append(os.Environ(), "BMI_RCRASH_CONFIG="+s.cfgPath, "BMI_RCRASH_AT="+p,
						"BMI_RCRASH_SCENARIO="+name, "BMI_RCRASH_GOLDEN="+s.golden)
					out, err := cmd.CombinedOutput()
					if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
						t.Fatalf("child not killed at %s: %v\n%s", p, err, out)
					}
					s.reopen()
					if got := realState(t, s.d, conf, pool, s.golden); got != before && got != after {
						t.Fatalf("after a crash at %s:\n%s\n--- before:\n%s\n--- after:\n%s", p, got, before, after)
					}
					s.teardown()
				})
			}
		})
	}
	t.Logf("kill points tested on real Ceph: %d", total)
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

func newRealSite(t *testing.T, hilURL, conf, pool string, sc realScenario) *realSite {
	dir := t.TempDir()
	s := &realSite{t: t, cfg: siteConfig(t, newUID(t), hilURL, dir), conf: conf, pool: pool}
	s.golden = s.cfg.UID + "-golden"
	rbd(t, conf, pool, "create", "--size", "8M", s.golden)
	t.Cleanup(func() { cephtest.RBD(conf, pool, "rm", s.golden) })
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
