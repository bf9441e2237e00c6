package core_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// crashScenario is an operation to kill mid-way: setup runs before it (in
// the parent), inject in the child just before it (to force a rollback),
// and run is the operation itself.
type crashScenario struct {
	// perProject runs it with per-project provisioning networks.
	perProject bool
	setup      func(e *env)
	inject     func(e *env)
	run        func(e *env) error
}

func crashScenarios() map[string]crashScenario {
	ctx := context.Background()
	provision := func(e *env) { e.must(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0")) }
	disk := func(e *env) { e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "disk-a")) }
	// switched: node1 provisioned, then booting disk-a.
	switched := func(e *env) {
		provision(e)
		disk(e)
		e.must(e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "disk-a"))
	}
	failFlatten := func(e *env) { e.images.Fail["Flatten"] = fault.Errorf(fault.Unavailable, "injected") }
	return map[string]crashScenario{
		"import": {run: func(e *env) error {
			return second(e.svc.ImportImage(ctx, admin, "tenant-b", "golden", core.ImportOptions{Name: "deb-b"}))
		}},
		"import rollback": {inject: failFlatten, run: func(e *env) error {
			return second(e.svc.ImportImage(ctx, admin, "tenant-b", "golden", core.ImportOptions{Name: "deb-b"}))
		}},
		"import snap protect": {setup: func(e *env) { e.ok(e.images.CreateSnapshot(ctx, "golden", "gold-snap")) }, run: func(e *env) error {
			return second(e.svc.ImportImage(ctx, admin, "tenant-b", "golden", core.ImportOptions{Name: "deb-b", Snap: "gold-snap", Protect: true}))
		}},
		"import snap protect rollback": {setup: func(e *env) { e.ok(e.images.CreateSnapshot(ctx, "golden", "gold-snap")) }, inject: failFlatten, run: func(e *env) error {
			return second(e.svc.ImportImage(ctx, admin, "tenant-b", "golden", core.ImportOptions{Name: "deb-b", Snap: "gold-snap", Protect: true}))
		}},
		"copy": {run: func(e *env) error {
			return second(e.svc.CopyImage(ctx, alice, "tenant-a", "debian", "tenant-a", "deb-copy"))
		}},
		"snapshot": {setup: provision, run: func(e *env) error {
			return second(e.svc.CreateSnapshot(ctx, alice, "tenant-a", "node1", "snap1"))
		}},
		"snapshot rollback": {setup: provision, inject: failFlatten, run: func(e *env) error {
			return second(e.svc.CreateSnapshot(ctx, alice, "tenant-a", "node1", "snap1"))
		}},
		"export": {run: func(e *env) error { return e.svc.ExportImage(ctx, admin, "tenant-a", "debian", "exported") }},
		"remove": {run: func(e *env) error { return e.svc.RemoveImage(ctx, alice, "tenant-a", "debian") }},
		"create disk": {run: func(e *env) error {
			return second(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "disk-a"))
		}},
		"delete disk": {setup: disk, run: func(e *env) error { return e.svc.DeleteDisk(ctx, alice, "tenant-a", "disk-a") }},
		"provision": {run: func(e *env) error {
			return second(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0"))
		}},
		"provision rollback": {inject: func(e *env) { e.exp.Fail = fault.Errorf(fault.Unavailable, "injected") }, run: func(e *env) error {
			return second(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0"))
		}},
		"deprovision": {setup: provision, run: func(e *env) error { return e.svc.Deprovision(ctx, alice, "tenant-a", "node1", "eth0") }},
		"provision per-project": {perProject: true, run: func(e *env) error {
			return second(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0"))
		}},
		"provision per-project rollback": {perProject: true, inject: func(e *env) { e.nets.FailConnect = fault.Errorf(fault.Unavailable, "injected") },
			run: func(e *env) error {
				return second(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0"))
			}},
		"deprovision per-project": {perProject: true, setup: provision, run: func(e *env) error {
			return e.svc.Deprovision(ctx, alice, "tenant-a", "node1", "eth0")
		}},
		"set boot": {setup: disk, run: func(e *env) error {
			return second(e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "disk-a"))
		}},
		"clear boot": {setup: func(e *env) {
			disk(e)
			e.must(e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "disk-a"))
		}, run: func(e *env) error { return e.svc.ClearBoot(ctx, alice, "tenant-a", "node1") }},
		"set boot per-project": {perProject: true, setup: disk, run: func(e *env) error {
			return second(e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "disk-a"))
		}},
		"set boot rollback": {setup: disk, inject: func(e *env) { e.nets.FailConnect = fault.Errorf(fault.Unavailable, "injected") },
			run: func(e *env) error {
				return second(e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "disk-a"))
			}},
		"switch provisioned": {setup: func(e *env) { provision(e); disk(e) }, run: func(e *env) error {
			return second(e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "disk-a"))
		}},
		"deprovision switched": {setup: switched, run: func(e *env) error {
			return e.svc.Deprovision(ctx, alice, "tenant-a", "node1", "eth0")
		}},
		"deprovision switched per-project": {perProject: true, setup: switched, run: func(e *env) error {
			return e.svc.Deprovision(ctx, alice, "tenant-a", "node1", "eth0")
		}},
		"delete owned disk": {setup: switched, run: func(e *env) error { return e.svc.DeleteDisk(ctx, alice, "tenant-a", "node1") }},
		"upload": {run: func(e *env) error {
			return second(e.svc.UploadImage(ctx, alice, "tenant-a", "up", strings.NewReader("bytes"), 5))
		}},
	}
}

type killPoint struct {
	kind  string
	seq   int
	phase string
}

func (k killPoint) String() string { return fmt.Sprintf("%s:%d:%s", k.kind, k.seq, k.phase) }

// TestCrashChild is the child process of TestCrash: it runs one scenario
// on the state in BMI_CRASH_DIR and SIGKILLs itself at BMI_CRASH_AT.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("BMI_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestCrash")
	}
	sc := crashScenarios()[os.Getenv("BMI_CRASH_SCENARIO")]
	at := os.Getenv("BMI_CRASH_AT")
	e := openEnv(t, dir)
	e.ok(second(e.svc.Start(context.Background())))
	var cur killPoint
	e.svc.SetCrashHook(func(kind string, seq int, phase string) {
		cur = killPoint{kind, seq, phase}
		if cur.String() == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	})
	e.images.Mid = func(method, _ string) {
		if (killPoint{cur.kind, cur.seq, "in-" + method}).String() == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	e.nets.Mid = func(method string) { e.images.Mid(method, "") }
	if sc.inject != nil {
		sc.inject(e)
	}
	err := sc.run(e)
	fmt.Printf("CHILD-COMPLETED err=%v\n", err)
}

// TestCrash kills each multi-step operation at every journal point in turn
// (SIGKILL, in a child process), restarts, recovers, and checks that the
// operation either completed or left no trace, and that the database, Ceph,
// the targets and the boot files agree; with the state database on SQLite
// and on PostgreSQL.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) { testCrash(t, engine) })
	}
}

// pgPhases are the kill points TestCrash tries on PostgreSQL: a step (or
// its undo) acted but not yet journaled so, the point where the journal
// and the world differ most. The other points differ from these only in
// the journal's last write, which the SQLite run covers at every point
// and the store's own tests cover on both engines. A kill point costs
// about ten times more on PostgreSQL (a database per site), so this keeps
// the PostgreSQL run near the SQLite run's cost.
var pgPhases = map[string]bool{"acted": true, "unacted": true}

func testCrash(t *testing.T, engine string) {
	total := 0
	names := make([]string, 0)
	for n := range crashScenarios() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		sc := crashScenarios()[name]
		t.Run(name, func(t *testing.T) {
			ref := seededWith(t, engine, sc.perProject)
			if sc.setup != nil {
				sc.setup(ref)
			}
			before := ref.state()
			var points []killPoint
			ref.svc.SetCrashHook(func(kind string, seq int, phase string) { points = append(points, killPoint{kind, seq, phase}) })
			// Inside a Ceph call: an image half removed (see coretest.Images.Mid).
			ref.images.Mid = func(method, _ string) {
				last := points[len(points)-1]
				points = append(points, killPoint{last.kind, last.seq, "in-" + method})
			}
			// Inside a HIL network call: HIL changed, BMI not told.
			ref.nets.Mid = func(method string) { ref.images.Mid(method, "") }
			if sc.inject != nil {
				sc.inject(ref)
			}
			refErr := sc.run(ref)
			ref.svc.SetCrashHook(nil)
			ref.images.Mid, ref.nets.Mid = nil, nil
			ref.images.Fail, ref.exp.Fail, ref.nets.FailConnect = map[string]error{}, nil, nil
			after := ref.state()
			if sc.inject == nil && refErr != nil {
				t.Fatalf("reference run failed: %v", refErr)
			}
			if len(points) == 0 {
				t.Fatal("the operation hit no journal point")
			}
			if engine == "postgres" {
				points = slices.DeleteFunc(points, func(p killPoint) bool { return !pgPhases[p.phase] })
			}
			total += len(points)
			for _, p := range points {
				t.Run(p.String(), func(t *testing.T) { crashAt(t, engine, name, sc, p, before, after) })
			}
		})
	}
	t.Logf("kill points tested on %s: %d", engine, total)
}

func crashAt(t *testing.T, engine, name string, sc crashScenario, p killPoint, before, after string) {
	dir := envDir(t, engine)
	if sc.perProject {
		setPerProject(t, dir)
	}
	e := openEnv(t, dir)
	e.seed()
	if sc.setup != nil {
		sc.setup(e)
	}
	e.db.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), "BMI_CRASH_DIR="+dir, "BMI_CRASH_SCENARIO="+name, "BMI_CRASH_AT="+p.String())
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "CHILD-COMPLETED") {
		t.Fatalf("child did not reach kill point %s:\n%s", p, out)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed at %s: %v\n%s", p, err, out)
	}
	r := openEnv(t, dir)
	if _, err := r.svc.Start(context.Background()); err != nil {
		t.Fatalf("recovery after a crash at %s: %v", p, err)
	}
	r.checkConsistent()
	if got := r.state(); got != before && got != after {
		t.Fatalf("after a crash at %s the state is neither the one before nor the one after the operation:\n%s\n--- before:\n%s\n--- after:\n%s", p, got, before, after)
	}
}
