package opjournal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/bmi-go/bmi/service/fault"
)

// memJournal is a Journal in memory; it survives a simulated crash.
type memJournal struct {
	mu  sync.Mutex
	ops map[string]*Record
}

func newMem() *memJournal { return &memJournal{ops: map[string]*Record{}} }

func (m *memJournal) CreateOp(_ context.Context, op Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops[op.ID] = &op
	return nil
}

func (m *memJournal) get(id string) (*Record, error) {
	op, ok := m.ops[id]
	if !ok {
		return nil, fault.Errorf(fault.NotFound, "operation %s", id)
	}
	return op, nil
}

func (m *memJournal) SetOpData(_ context.Context, id string, data json.RawMessage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	op, err := m.get(id)
	if err == nil {
		op.Data = data
	}
	return err
}

func (m *memJournal) SetOpState(_ context.Context, id string, st State, msg string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	op, err := m.get(id)
	if err == nil {
		op.State, op.Error = st, msg
	}
	return err
}

func (m *memJournal) SetOpProgress(_ context.Context, id string, p float64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	op, err := m.get(id)
	if err == nil {
		op.Progress = p
	}
	return err
}

func (m *memJournal) MarkStep(_ context.Context, id string, seq int, name string, st StepState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	op, err := m.get(id)
	if err != nil {
		return err
	}
	for i := range op.Steps {
		if op.Steps[i].Seq == seq {
			op.Steps[i].State = st
			return nil
		}
	}
	op.Steps = append(op.Steps, StepRecord{Seq: seq, Name: name, State: st})
	return nil
}

func (m *memJournal) Op(_ context.Context, id string) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	op, err := m.get(id)
	if err != nil {
		return Record{}, err
	}
	c := *op
	c.Steps = append([]StepRecord(nil), op.Steps...)
	return c, nil
}

func (m *memJournal) Ops(_ context.Context, st State, _ int) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Record
	for _, op := range m.ops {
		if st == "" || op.State == st {
			out = append(out, *op)
		}
	}
	return out, nil
}

// world is what the test operation acts on: a set of things that exist.
type world struct {
	mu  sync.Mutex
	has map[string]bool
}

func (w *world) set(k string, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if on {
		w.has[k] = true
	} else {
		delete(w.has, k)
	}
}

func (w *world) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ks []string
	for k := range w.has {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// pairData is the test operation's data: Made is filled in by its first
// step, as an operation's new row id is.
type pairData struct {
	Name string `json:"name"`
	Made string `json:"made,omitempty"`
}

// pairOp makes <name>-a, then <name>-b (the commit), then drops
// <name>-tmp; fail names a step that fails.
func pairOp(w *world, fail string) *Op[pairData] {
	act := func(name string, do func(d *pairData)) func(context.Context, *Run[pairData]) error {
		return func(_ context.Context, r *Run[pairData]) error {
			if name == fail {
				return fault.Errorf(fault.Unavailable, "%s failed (injected)", name)
			}
			do(&r.Data)
			return nil
		}
	}
	return &Op[pairData]{
		Kind: "pair",
		Steps: []Step[pairData]{
			{Name: "make a", Do: act("make a", func(d *pairData) { d.Made = d.Name + "-a"; w.set(d.Made, true) }),
				Undo: func(_ context.Context, r *Run[pairData]) error {
					if r.Data.Made == "" {
						w.set(r.Data.Name+"-a", false) // acted, not journaled
					}
					w.set(r.Data.Made, false)
					return nil
				}},
			{Name: "make b", Do: act("make b", func(d *pairData) { w.set(d.Name+"-b", true) }),
				Undo: func(_ context.Context, r *Run[pairData]) error { w.set(r.Data.Name+"-b", false); return nil }},
			{Name: "drop tmp", Do: act("drop tmp", func(d *pairData) { w.set(d.Name+"-tmp", false) })},
		},
		Commit: "make b",
		Legacy: func(m map[string]string) (pairData, error) { return pairData{Name: m["name"], Made: m["made"]}, nil },
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newWorld() *world { return &world{has: map[string]bool{"x-tmp": true}} }

// TestRun: an operation completes, or fails before its commit step and
// leaves no trace, or fails after it and is finished by RetryFailed.
func TestRun(t *testing.T) {
	tests := map[string]struct {
		fail      string
		wantState State
		wantWorld string
		wantRetry string // the world after RetryFailed
	}{
		"completes":              {wantState: Done, wantWorld: "x-a,x-b", wantRetry: "x-a,x-b"},
		"fails first":            {fail: "make a", wantState: RolledBack, wantWorld: "x-tmp", wantRetry: "x-tmp"},
		"fails at the commit":    {fail: "make b", wantState: RolledBack, wantWorld: "x-tmp", wantRetry: "x-tmp"},
		"fails after the commit": {fail: "drop tmp", wantState: Failed, wantWorld: "x-a,x-b,x-tmp", wantRetry: "x-a,x-b"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			j, w := newMem(), newWorld()
			op := pairOp(w, tc.fail)
			e, err := New(j, quiet(), op)
			if err != nil {
				t.Fatal(err)
			}
			id, err := Start(ctx, e, op, Meta{}, pairData{Name: "x"}, nil, 0)
			if (err != nil) != (tc.fail != "") {
				t.Fatalf("Start: %v", err)
			}
			rec, _ := j.Op(ctx, id)
			if rec.State != tc.wantState || w.String() != tc.wantWorld {
				t.Fatalf("state %s, world %q; want %s, %q", rec.State, w, tc.wantState, tc.wantWorld)
			}
			// A fixed dependency: the retry runs without the failure.
			fixed, _ := New(j, quiet(), pairOp(w, ""))
			if err := fixed.RetryFailed(ctx); err != nil {
				t.Fatal(err)
			}
			if w.String() != tc.wantRetry {
				t.Fatalf("after the retry the world is %q, want %q", w, tc.wantRetry)
			}
		})
	}
}

// TestCrashAtEveryPoint stops the operation at every point where a crash
// can fall (the goroutine exits there, as the process would die, and the
// journal stays as it was), recovers with a new engine, and checks the
// world is as before or as after the operation. Undo of "make a" after a
// crash between acting and journaling is what "acted" points exercise.
func TestCrashAtEveryPoint(t *testing.T) {
	ctx := context.Background()
	var points []string
	{
		j, w := newMem(), newWorld()
		op := pairOp(w, "")
		e, _ := New(j, quiet(), op)
		e.SetHook(func(kind string, seq int, phase string) { points = append(points, fmt.Sprintf("%d:%s", seq, phase)) })
		if _, err := Start(ctx, e, op, Meta{}, pairData{Name: "x"}, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	if len(points) != 12 { // 3 steps × before, doing, acted, after
		t.Fatalf("points %v, want 12", points)
	}
	for _, at := range points {
		t.Run(at, func(t *testing.T) {
			j, w := newMem(), newWorld()
			op := pairOp(w, "")
			e, _ := New(j, quiet(), op)
			e.SetHook(func(kind string, seq int, phase string) {
				if fmt.Sprintf("%d:%s", seq, phase) == at {
					runtime.Goexit() // the crash
				}
			})
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _ = Start(ctx, e, op, Meta{}, pairData{Name: "x"}, nil, 0)
				t.Errorf("the operation ran past %s", at)
			}()
			<-done
			again, _ := New(j, quiet(), pairOp(w, ""))
			if err := again.RecoverAll(ctx); err != nil {
				t.Fatal(err)
			}
			if got := w.String(); got != "x-tmp" && got != "x-a,x-b" {
				t.Fatalf("after a crash at %s the world is %q", at, got)
			}
			if n, _ := again.Unfinished(ctx); n != 0 {
				t.Fatalf("%d operations unfinished after recovery", n)
			}
		})
	}
}

// TestRecoverOldFormat: an operation journaled by a bmid before typed data
// (a flat object of strings) is recovered by Legacy; one journaled by a
// newer bmid (a version this one does not know) is refused, not guessed.
func TestRecoverOldFormat(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		data      string
		steps     []StepRecord
		wantWorld string
		wantErr   bool
	}{
		"version 0, before the commit: rolled back": {data: `{"name":"x","made":"x-a"}`,
			steps: []StepRecord{{Seq: 0, State: StepDone}, {Seq: 1, State: StepDoing}}, wantWorld: "x-tmp"},
		"version 0, after the commit: finished": {data: `{"name":"x","made":"x-a"}`,
			steps: []StepRecord{{Seq: 0, State: StepDone}, {Seq: 1, State: StepDone}}, wantWorld: "x-a,x-b"},
		"version 1": {data: `{"version":1,"data":{"name":"x","made":"x-a"}}`,
			steps: []StepRecord{{Seq: 0, State: StepDone}, {Seq: 1, State: StepDone}}, wantWorld: "x-a,x-b"},
		"version 2": {data: `{"version":2,"data":{"name":"x"}}`, wantErr: true, wantWorld: "x-a,x-b,x-tmp"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			j, w := newMem(), newWorld()
			w.set("x-a", true)
			w.set("x-b", true)
			_ = j.CreateOp(ctx, Record{ID: "old", Kind: "pair", State: Running, Data: json.RawMessage(tc.data), Steps: tc.steps})
			e, _ := New(j, quiet(), pairOp(w, ""))
			err := e.RecoverAll(ctx)
			if (err != nil) != tc.wantErr {
				t.Fatalf("RecoverAll: %v", err)
			}
			if w.String() != tc.wantWorld {
				t.Fatalf("world %q, want %q", w, tc.wantWorld)
			}
		})
	}
}

// TestDeclarations: a commit step that is not one of the steps, two steps
// of one name and two operations of one kind are refused.
func TestDeclarations(t *testing.T) {
	w := newWorld()
	noop := func(context.Context, *Run[pairData]) error { return nil }
	tests := map[string][]Definition{
		"commit not a step": {&Op[pairData]{Kind: "k", Steps: []Step[pairData]{{Name: "a", Do: noop}}, Commit: "b"}},
		"two steps named a": {&Op[pairData]{Kind: "k", Steps: []Step[pairData]{{Name: "a", Do: noop}, {Name: "a", Do: noop}}, Commit: "a"}},
		"two kinds named k": {pairOp(w, ""), pairOp(w, "")},
		"step without do":   {&Op[pairData]{Kind: "k", Steps: []Step[pairData]{{Name: "a"}}, Commit: "a"}},
	}
	for name, defs := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(newMem(), quiet(), defs...); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := New(newMem(), quiet(), pairOp(w, "")); err != nil {
		t.Fatal(err)
	}
}

// TestStateWriteFailure: when the journal cannot record how an operation
// ended, Start says so.
func TestStateWriteFailure(t *testing.T) {
	j, w := &failState{memJournal: newMem()}, newWorld()
	op := pairOp(w, "")
	e, _ := New(j, quiet(), op)
	_, err := Start(context.Background(), e, op, Meta{}, pairData{Name: "x"}, nil, 0)
	if err == nil || !errors.Is(err, errInjected) {
		t.Fatalf("Start = %v, want the journal's error", err)
	}
}

var errInjected = errors.New("injected")

type failState struct{ *memJournal }

func (f *failState) SetOpState(context.Context, string, State, string) error { return errInjected }
