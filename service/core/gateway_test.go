package core_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

// peer returns a second gateway, id, on e's PostgreSQL database (a
// connection pool of its own) and e's fakes (one Ceph, one HIL).
func (e *env) peer(t *testing.T, id string) *env {
	t.Helper()
	dsn, err := os.ReadFile(filepath.Join(e.dir, "pg.dsn"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenPostgres(context.Background(), string(dsn), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p := *e
	p.db = db
	p.svc = p.service(t, joinGateway(t, db, id, time.Hour))
	return &p
}

func (e *env) lockRows() int {
	e.t.Helper()
	var n int
	if err := e.db.SQL().QueryRow(`SELECT COUNT(*) FROM locks`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestGatewaysConflict: two gateways on one PostgreSQL database issue
// conflicting operations on the same node and disk at once (the first is
// held inside its first step while the second is asked): one wins, the
// other gets a conflict that names the first and its gateway, and the
// state is consistent afterwards, with no lock left.
func TestGatewaysConflict(t *testing.T) {
	ctx := context.Background()
	provision := func(s *core.Service) error {
		return second(s.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0"))
	}
	deprovision := func(s *core.Service) error { return s.Deprovision(ctx, alice, "tenant-a", "node1", "eth0") }
	snapshot := func(s *core.Service) error { return second(s.CreateSnapshot(ctx, alice, "tenant-a", "node1", "snap1")) }
	tests := map[string]struct {
		provisioned   bool
		first, second func(s *core.Service) error
		busy          string
	}{
		"provision and provision":   {first: provision, second: provision, busy: `is busy: provision of "node1"`},
		"deprovision and snapshot":  {provisioned: true, first: deprovision, second: snapshot, busy: `image "node1" in project "tenant-a" is busy: deprovision`},
		"snapshot and deprovision":  {provisioned: true, first: snapshot, second: deprovision, busy: `is busy: snapshot of "node1"`},
		"deprovision and provision": {provisioned: true, first: deprovision, second: provision, busy: `is busy: deprovision of "node1"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := seededOn(t, "postgres")
			if tc.provisioned {
				e.ok(provision(e.svc))
			}
			a, b := e.peer(t, "gw-a"), e.peer(t, "gw-b")
			held, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			a.svc.SetCrashHook(func(_ string, _ int, phase string) {
				if phase == "doing" {
					once.Do(func() { close(held); <-release })
				}
			})
			first := make(chan error, 1)
			go func() { first <- tc.first(a.svc) }()
			select {
			case <-held:
			case <-time.After(2 * time.Minute):
				t.Fatal("the first operation never reached its first step")
			}
			err := tc.second(b.svc)
			close(release)
			if fault.Of(err) != fault.Conflict || !strings.Contains(err.Error(), tc.busy) || !strings.Contains(err.Error(), "(gateway gw-a)") {
				t.Errorf("the second gateway's operation: %v; want a conflict with %q naming gateway gw-a", err, tc.busy)
			}
			if err := <-first; err != nil {
				t.Fatalf("the first gateway's operation: %v", err)
			}
			a.svc.SetCrashHook(nil)
			a.checkConsistent()
			if n := a.lockRows(); n != 0 {
				t.Fatalf("%d locks left", n)
			}
		})
	}
}

// TestTakeOverChild is the child of TestTakeOver: TestCrashChild as
// gateway gw-b.
func TestTakeOverChild(t *testing.T) {
	if os.Getenv("BMI_CRASH_GATEWAY") == "" {
		t.Skip("run by TestTakeOver")
	}
	TestCrashChild(t)
}

// TestTakeOver kills gateway gw-b (a child process) inside provision,
// deprovision and snapshot, before and after each step acts; gateway gw-a
// on the same PostgreSQL database leaves the operation alone while gw-b's
// lease lasts (its own start-up recovers only its own operations), and
// once the lease has expired takes it over: the operation is finished or
// rolled back, the state is the one before or after it and consistent, and
// no lock is left.
func TestTakeOver(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	scenarios := crashScenarios()
	for _, name := range []string{"provision", "provision rollback", "deprovision", "snapshot"} {
		sc := scenarios[name]
		t.Run(name, func(t *testing.T) {
			ref := seededOn(t, "postgres")
			if sc.setup != nil {
				sc.setup(ref)
			}
			before := ref.state()
			var points []killPoint
			ref.svc.SetCrashHook(func(kind string, seq int, phase string) {
				if phase == "doing" || phase == "acted" {
					points = append(points, killPoint{kind, seq, phase})
				}
			})
			if sc.inject != nil {
				sc.inject(ref)
			}
			refErr := sc.run(ref)
			ref.svc.SetCrashHook(nil)
			ref.images.Fail, ref.exp.Fail = map[string]error{}, nil
			after := ref.state()
			if sc.inject == nil && refErr != nil {
				t.Fatalf("reference run failed: %v", refErr)
			}
			for _, p := range points {
				t.Run(p.String(), func(t *testing.T) { takeOverAt(t, name, sc, p, before, after) })
			}
		})
	}
}

func takeOverAt(t *testing.T, name string, sc crashScenario, p killPoint, before, after string) {
	ctx := context.Background()
	dir := envDir(t, "postgres")
	e := openEnv(t, dir)
	e.seed()
	if sc.setup != nil {
		sc.setup(e)
	}
	e.db.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTakeOverChild$", "-test.v")
	cmd.Env = append(os.Environ(), "BMI_CRASH_DIR="+dir, "BMI_CRASH_SCENARIO="+name, "BMI_CRASH_AT="+p.String(), "BMI_CRASH_GATEWAY=gw-b")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("gateway gw-b was not killed at %s: %v\n%s", p, err, out)
	}
	a := openDB(t, dir)
	gw := joinGateway(t, a.db, "gw-a", time.Hour)
	a.svc = a.service(t, gw)
	if _, err := a.svc.Start(ctx); err != nil {
		t.Fatalf("gw-a start: %v", err)
	}
	running, err := a.db.Ops(ctx, core.OpRunning, 0)
	if err != nil || len(running) != 1 || running[0].Gateway != "gw-b" {
		t.Fatalf("after gw-a's start, running operations: %+v, %v; want gw-b's, untouched", running, err)
	}
	if dead, err := a.svc.TakeOver(ctx); err != nil || len(dead) != 0 {
		t.Fatalf("take-over while gw-b's lease lasts: %v, %v", dead, err)
	}
	gw.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } // gw-b's lease is over
	dead, err := a.svc.TakeOver(ctx)
	if err != nil || fmt.Sprint(dead) != "[gw-b]" {
		t.Fatalf("take-over after gw-b's lease: %v, %v", dead, err)
	}
	a.checkConsistent()
	if got := a.state(); got != before && got != after {
		t.Fatalf("after gw-b died at %s and gw-a took over, the state is neither the one before nor the one after:\n%s\n--- before:\n%s\n--- after:\n%s", p, got, before, after)
	}
	if n := a.lockRows(); n != 0 {
		t.Fatalf("%d locks left after the take-over", n)
	}
}

// TestKeepGateway: KeepGateway renews the lease and takes over a gateway
// whose lease expired; once another gateway has taken this one over (it
// stopped renewing in time, as a paused one does), it returns the error
// that says the lease was lost.
func TestKeepGateway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := seededOn(t, "postgres")
	a := e.peer(t, "gw-a")
	gwA, err := store.NewGateway(a.db, "gw-a", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	a.svc = a.service(t, gwA)
	// gw-dead joined long ago and never renewed.
	dead, err := store.NewGateway(e.db, "gw-dead", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	dead.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	e.ok(dead.Join(ctx))
	kept := make(chan error, 1)
	go func() { kept <- a.svc.KeepGateway(ctx) }()
	gone := func(id string) bool {
		var n int
		e.ok(e.db.SQL().QueryRow(`SELECT COUNT(*) FROM gateways WHERE id = $1`, id).Scan(&n))
		return n == 0
	}
	for deadline := time.Now().Add(2 * time.Minute); !gone("gw-dead"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("KeepGateway did not take over gw-dead")
		}
	}
	// gw-c sees gw-a's lease as long over (its clock runs ahead) and takes
	// it over: gw-a must notice and stop.
	c := e.peer(t, "gw-c")
	gwC, err := store.NewGateway(c.db, "gw-c", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	gwC.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if got, err := gwC.ClaimExpired(ctx); err != nil || fmt.Sprint(got) != "[gw-a]" {
		t.Fatalf("gw-c's take-over: %v, %v", got, err)
	}
	select {
	case err := <-kept:
		if fault.Of(err) != fault.Conflict || !strings.Contains(err.Error(), "lost its lease") {
			t.Fatalf("KeepGateway after losing its lease: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("KeepGateway went on after its lease was taken over")
	}
}

// slowClaim is a gateway whose first take-over takes until release is
// closed (a dead gateway with many disks to export), counting renewals.
type slowClaim struct {
	*store.Gateway
	claiming chan struct{}
	release  chan struct{}
	once     sync.Once
	renews   atomic.Int32
}

func (g *slowClaim) Renew(ctx context.Context) error {
	g.renews.Add(1)
	return g.Gateway.Renew(ctx)
}

func (g *slowClaim) ClaimExpired(ctx context.Context) ([]string, error) {
	g.once.Do(func() {
		close(g.claiming)
		<-g.release
	})
	return g.Gateway.ClaimExpired(ctx)
}

// TestKeepGatewayLongTakeOver: while a take-over runs long, KeepGateway
// goes on renewing the lease (a survivor exporting a dead gateway's
// hundreds of disks must not lose its own lease meanwhile).
func TestKeepGatewayLongTakeOver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := seededOn(t, "postgres")
	a := e.peer(t, "gw-a")
	gw, err := store.NewGateway(a.db, "gw-a", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowClaim{Gateway: gw, claiming: make(chan struct{}), release: make(chan struct{})}
	a.svc = a.serviceAs(t, slow)
	kept := make(chan error, 1)
	go func() { kept <- a.svc.KeepGateway(ctx) }()
	select {
	case <-slow.claiming:
	case <-time.After(time.Minute):
		t.Fatal("no take-over started")
	}
	before := slow.renews.Load()
	for deadline := time.Now().Add(time.Minute); slow.renews.Load() < before+3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d renewals during a long take-over; want the lease kept", slow.renews.Load()-before)
		}
	}
	close(slow.release)
	cancel()
	if err := <-kept; err != nil {
		t.Fatal(err)
	}
}
