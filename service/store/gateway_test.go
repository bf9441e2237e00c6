package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/pgtest"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

func gateway(t *testing.T, s *DB, id string) *Gateway {
	t.Helper()
	g, err := NewGateway(s, id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Join(context.Background()); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestGatewayLocks: locks taken through one database handle are seen
// through another (on PostgreSQL, another session), all or none, with a
// conflict naming the holder; of many takers at once exactly one wins.
func TestGatewayLocks(t *testing.T) { eachEngine(t, testGatewayLocks) }

func testGatewayLocks(t *testing.T, d testDB) {
	ctx := context.Background()
	a, b := gateway(t, d.open(t), "gw-a"), gateway(t, d.open(t), "gw-b")
	release, err := a.Lock(ctx, "provision of node1", `node "n1"`, `image "n1"`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Lock(ctx, "deprovision of node1", `node "n2"`, `node "n1"`)
	if fault.Of(err) != fault.Conflict || !strings.Contains(err.Error(), `node "n1" is busy: provision of node1 in progress (gateway gw-a)`) {
		t.Fatalf("second taker: %v, want a conflict naming the holder", err)
	}
	if rel, err := b.Lock(ctx, "x", `node "n2"`); err != nil { // all or none: n2 was not kept
		t.Fatalf("a lock a refused call did not take: %v", err)
	} else {
		rel()
	}
	release()
	rel, err := b.Lock(ctx, "deprovision of node1", `node "n1"`)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	rel()

	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for i := range 8 {
		g := []*Gateway{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := g.Lock(ctx, "race", `image "x"`, `node "x"`)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case fault.Of(err) == fault.Conflict:
				conflicts++
			default:
				t.Errorf("racing taker: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || conflicts != 7 {
		t.Fatalf("8 takers at once: %d won, %d conflicts; want 1 and 7", wins, conflicts)
	}
}

// TestGatewayTakeOver: a gateway whose lease expired is taken over exactly
// once, even by two claimers at once: its unfinished operations become the
// claimer's, its locks stay held until the claimer releases them, and the
// dead gateway can no longer renew its lease. A live lease is not taken.
func TestGatewayTakeOver(t *testing.T) { eachEngine(t, testGatewayTakeOver) }

func testGatewayTakeOver(t *testing.T, d testDB) {
	ctx := context.Background()
	sa := d.open(t)
	a, err := NewGateway(sa, "gw-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	a.Now = func() time.Time { return time.Now().Add(-2 * time.Minute) } // its lease is over by now
	if err := a.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sa.CreateOp(ctx, core.Operation{ID: "op-a", Kind: "provision", Gateway: "gw-a", State: core.OpRunning}); err != nil {
		t.Fatal(err)
	}
	if err := sa.CreateOp(ctx, core.Operation{ID: "op-a-done", Kind: "provision", Gateway: "gw-a", State: core.OpDone}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lock(ctx, "provision of n1", `node "n1"`); err != nil {
		t.Fatal(err)
	}
	b, c := gateway(t, d.open(t), "gw-b"), gateway(t, d.open(t), "gw-c")
	if got, err := a.ClaimExpired(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ClaimExpired with every other lease live = %v, %v", got, err)
	}
	var wg sync.WaitGroup
	claims := make([][]string, 2)
	for i, g := range []*Gateway{b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := g.ClaimExpired(ctx)
			if err != nil {
				t.Error(err)
			}
			for _, id := range got {
				if id == "gw-a" {
					claims[i] = append(claims[i], id)
				}
			}
		}()
	}
	wg.Wait()
	if len(claims[0])+len(claims[1]) != 1 {
		t.Fatalf("gw-a taken over by b %v and by c %v: want exactly once", claims[0], claims[1])
	}
	winner, loser := b, c
	if len(claims[1]) == 1 {
		winner, loser = c, b
	}
	op, err := sa.Op(ctx, "op-a")
	if err != nil || op.Gateway != winner.ID() {
		t.Fatalf("op-a after the take-over: gateway %q, %v; want %q", op.Gateway, err, winner.ID())
	}
	if op, _ := sa.Op(ctx, "op-a-done"); op.Gateway != "gw-a" {
		t.Fatalf("a finished operation moved to %q", op.Gateway)
	}
	// The dead gateway, should it wake up, can no longer journal the
	// operation it had.
	if err := sa.MarkStep(ctx, "op-a", 0, "insert row", core.StepDoing); fault.Of(err) != fault.Conflict || !strings.Contains(err.Error(), "taken over") {
		t.Fatalf("the dead gateway journals a step of its old operation: %v, want a conflict", err)
	}
	if err := sa.SetOpState(ctx, "op-a", core.OpDone, ""); fault.Of(err) != fault.Conflict {
		t.Fatalf("the dead gateway records its old operation's state: %v, want a conflict", err)
	}
	a.Now = nil
	if err := a.Renew(ctx); fault.Of(err) != fault.Conflict || !strings.Contains(err.Error(), "lost its lease") {
		t.Fatalf("the dead gateway renews: %v, want a conflict", err)
	}
	if _, err := loser.Lock(ctx, "deprovision of n1", `node "n1"`); fault.Of(err) != fault.Conflict {
		t.Fatalf("a lock taken over is free before its operations are recovered: %v", err)
	}
	if err := winner.ReleaseTakenOver(ctx); err != nil {
		t.Fatal(err)
	}
	if rel, err := loser.Lock(ctx, "deprovision of n1", `node "n1"`); err != nil {
		t.Fatalf("after ReleaseTakenOver: %v", err)
	} else {
		rel()
	}
	if err := winner.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := loser.ClaimExpired(ctx); err != nil || len(got) != 1 || got[0] != winner.ID() {
		t.Fatalf("after %s left: ClaimExpired = %v, %v", winner.ID(), got, err)
	}
}

// TestGatewayIDOnce: on PostgreSQL two live processes cannot share a
// gateway id.
func TestGatewayIDOnce(t *testing.T) {
	d := testDB{engine: "postgres", where: pgtest.Database(t)}
	gateway(t, d.open(t), "gw-a")
	g, err := NewGateway(d.open(t), "gw-a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Join(context.Background()); fault.Of(err) != fault.Conflict || !strings.Contains(err.Error(), `gateway "gw-a" is already running`) {
		t.Fatalf("second gw-a: %v", err)
	}
}

// TestGatewaysExcludeLoneBmid: gateways hold the instance lock shared, so
// several gateways run together, but never beside a lone bmid (which holds
// it exclusive), in either order.
func TestGatewaysExcludeLoneBmid(t *testing.T) {
	ctx := context.Background()
	d := testDB{engine: "postgres", where: pgtest.Database(t)}
	lone := d.open(t)
	if err := lone.LockInstance(ctx); err != nil {
		t.Fatal(err)
	}
	g, err := NewGateway(d.open(t), "gw-a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Join(ctx); fault.Of(err) != fault.Conflict || !strings.Contains(err.Error(), "not a gateway") {
		t.Fatalf("a gateway joins beside a lone bmid: %v", err)
	}
	if err := lone.Close(); err != nil {
		t.Fatal(err)
	}
	gateway(t, d.open(t), "gw-a")
	gateway(t, d.open(t), "gw-b")
	if err := d.open(t).LockInstance(ctx); fault.Of(err) != fault.Conflict {
		t.Fatalf("a lone bmid starts beside gateways: %v", err)
	}
}
