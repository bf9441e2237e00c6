package opjournal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// Definition is a declared operation (an *Op of any data type), as the
// Engine registers it.
type Definition interface {
	kind() string
	stepNames() []string
	check() error
	recover(ctx context.Context, e *Engine, rec Record) error
}

// Engine runs and recovers the operations registered with it.
type Engine struct {
	j     Journal
	log   *slog.Logger
	kinds map[string]Definition
	hook  func(kind string, seq int, phase string)
	// gateway is this process's name in a journal several share: it marks
	// the operations it starts and recovers only those marked with it.
	gateway string

	// recoverMu serialises recoveries (start-up, reconcile, retries).
	recoverMu sync.Mutex
	// liveMu guards live: the operations running in this process, which
	// recovery never touches.
	liveMu sync.Mutex
	live   map[string]bool
}

// New returns an Engine that journals to j and registers ops.
func New(j Journal, log *slog.Logger, ops ...Definition) (*Engine, error) {
	e := &Engine{j: j, log: log, kinds: map[string]Definition{}, live: map[string]bool{}}
	for _, op := range ops {
		if err := op.check(); err != nil {
			return nil, err
		}
		if _, dup := e.kinds[op.kind()]; dup {
			return nil, fault.Errorf(fault.Internal, "operation kind %q declared twice", op.kind())
		}
		e.kinds[op.kind()] = op
	}
	return e, nil
}

// SetHook installs a function called at every point where a crash can fall
// (kind, step index, phase: "before" a step is journaled as doing, "doing"
// once it is, "acted" once it acted but before that is journaled, "after"
// once it is; "undoing", "unacted", "undone" likewise for a rollback).
// Tests kill the process there; production never sets it.
func (e *Engine) SetHook(fn func(kind string, seq int, phase string)) { e.hook = fn }

// SetGateway names this process in a journal that several processes
// share: operations it starts are marked with id, and recovery finishes
// only operations so marked (a dead process's are handed over in the
// journal, exactly once, by whoever takes over from it). "" (the default)
// marks nothing and recovers every operation. Call it before any other
// method.
func (e *Engine) SetGateway(id string) { e.gateway = id }

func (e *Engine) at(kind string, seq int, phase string) {
	if e.hook != nil {
		e.hook(kind, seq, phase)
	}
}

// Kinds lists the registered operations and their step names.
func (e *Engine) Kinds() map[string][]string {
	out := map[string][]string{}
	for k, op := range e.kinds {
		out[k] = op.stepNames()
	}
	return out
}

// Live reports whether operation id runs in this process.
func (e *Engine) Live(id string) bool {
	e.liveMu.Lock()
	defer e.liveMu.Unlock()
	return e.live[id]
}

func (e *Engine) setLive(id string, on bool) {
	e.liveMu.Lock()
	defer e.liveMu.Unlock()
	if on {
		e.live[id] = true
	} else {
		delete(e.live, id)
	}
}

type notifyKey struct{}

// WithNotify returns a context whose operations call fn with their id as
// soon as they are journaled, so a caller can return the id to poll while
// the operation goes on.
func WithNotify(ctx context.Context, fn func(id string)) context.Context {
	return context.WithValue(ctx, notifyKey{}, fn)
}

func newID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("op-%d", time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}

// NewID returns a fresh random id (operations', and temporary names').
func NewID() string { return newID() }

// Start journals and runs an operation of a kind registered with e, with
// body as its stream (nil for none). It runs to completion even if ctx is
// cancelled (the caller went away or the daemon is stopping): a half-done
// operation is worse than a late one, and a crash is covered by the
// journal. It returns the operation's id and its error.
func Start[D any](ctx context.Context, e *Engine, op *Op[D], m Meta, data D, body io.Reader, size uint64) (string, error) {
	if e.kinds[op.Kind] != Definition(op) {
		return "", fault.Errorf(fault.Internal, "operation %s is not registered with this engine", op.Kind)
	}
	raw, err := op.encode(data)
	if err != nil {
		return "", err
	}
	id := newID()
	rec := Record{ID: id, Kind: op.Kind, Project: m.Project, Target: m.Target, Principal: m.Principal, Gateway: e.gateway, State: Running, Data: raw}
	if err := e.j.CreateOp(ctx, rec); err != nil {
		return "", fmt.Errorf("%s: journal: %w", op.Kind, err)
	}
	e.setLive(id, true)
	defer e.setLive(id, false)
	if fn, ok := ctx.Value(notifyKey{}).(func(string)); ok {
		fn(id)
	}
	r := &runner[D]{e: e, op: op, run: &Run[D]{ID: id, Data: data, Body: body, Size: size, j: e.j}, journaled: raw}
	e.log.Info("operation started", "op", id, "kind", op.Kind, "project", m.Project, "target", m.Target, "user", m.Principal)
	return id, r.forward(context.WithoutCancel(ctx), 0)
}

// runner runs one operation's steps.
type runner[D any] struct {
	e         *Engine
	op        *Op[D]
	run       *Run[D]
	journaled json.RawMessage // the data as last journaled
}

// forward runs the steps from index from on; on failure before the commit
// step it rolls back, after it it leaves the operation failed for a retry.
func (r *runner[D]) forward(ctx context.Context, from int) error {
	steps, commit, kind, id := r.op.Steps, r.op.commit(), r.op.Kind, r.run.ID
	for i := from; i < len(steps); i++ {
		st := steps[i]
		r.e.at(kind, i, "before")
		if err := r.e.j.MarkStep(ctx, id, i, st.Name, StepDoing); err != nil {
			// Step i has not acted: steps up to i-1 are done.
			return r.abort(ctx, i-1, i-1 >= commit, fmt.Errorf("%s: journal: %w", kind, err))
		}
		r.e.at(kind, i, "doing")
		if err := st.Do(ctx, r.run); err != nil {
			// Step i may have acted in part: undo it too.
			return r.abort(ctx, i, i-1 >= commit, err)
		}
		r.e.at(kind, i, "acted")
		if err := r.saveData(ctx); err != nil {
			return r.abort(ctx, i, i-1 >= commit, err)
		}
		if err := r.e.j.MarkStep(ctx, id, i, st.Name, StepDone); err != nil {
			return r.abort(ctx, i, i-1 >= commit, fmt.Errorf("%s: journal: %w", kind, err))
		}
		r.e.at(kind, i, "after")
	}
	if err := r.e.finish(ctx, id, Done, "", nil); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	_ = r.e.j.SetOpProgress(ctx, id, 1)
	r.e.log.Info("operation done", "op", id, "kind", kind)
	return nil
}

// saveData journals the operation's data if a step changed it.
func (r *runner[D]) saveData(ctx context.Context) error {
	raw, err := r.op.encode(r.run.Data)
	if err != nil {
		return err
	}
	if string(raw) == string(r.journaled) {
		return nil
	}
	if err := r.e.j.SetOpData(ctx, r.run.ID, raw); err != nil {
		return fmt.Errorf("%s: journal: %w", r.op.Kind, err)
	}
	r.journaled = raw
	return nil
}

// abort handles a failure: an operation whose commit step is done is left
// failed for a forward retry; any other is rolled back from step touched,
// the last step that may have acted.
func (r *runner[D]) abort(ctx context.Context, touched int, committed bool, cause error) error {
	id, kind := r.run.ID, r.op.Kind
	if committed {
		r.e.log.Error("operation failed after commit; will be retried", "op", id, "kind", kind, "step", r.nameAt(touched), "err", cause)
		return r.e.finish(ctx, id, Failed, cause.Error(), cause)
	}
	r.e.log.Warn("operation failed; rolling back", "op", id, "kind", kind, "step", r.nameAt(touched), "err", cause)
	if err := r.backward(ctx, touched); err != nil {
		return r.e.finish(ctx, id, Failed, fmt.Sprintf("%v; rollback incomplete: %v", cause, err),
			fmt.Errorf("%w (rollback incomplete, will be retried: %v)", cause, err))
	}
	return r.e.finish(ctx, id, RolledBack, cause.Error(), cause)
}

func (r *runner[D]) nameAt(i int) string {
	if i < 0 || i >= len(r.op.Steps) {
		return "journal"
	}
	return r.op.Steps[i].Name
}

// backward undoes the steps from index from down to 0.
func (r *runner[D]) backward(ctx context.Context, from int) error {
	for j := from; j >= 0; j-- {
		st := r.op.Steps[j]
		if st.Undo == nil {
			continue
		}
		r.e.at(r.op.Kind, j, "undoing")
		if err := r.e.j.MarkStep(ctx, r.run.ID, j, st.Name, StepUndoing); err != nil {
			return err
		}
		if err := st.Undo(ctx, r.run); err != nil {
			return fmt.Errorf("undo %s: %w", st.Name, err)
		}
		r.e.at(r.op.Kind, j, "unacted")
		if err := r.e.j.MarkStep(ctx, r.run.ID, j, st.Name, StepUndone); err != nil {
			return err
		}
		r.e.at(r.op.Kind, j, "undone")
	}
	return nil
}

// finish records an operation's final state and returns result, joined with
// the journal's error when the state could not be recorded (the operation
// then stays unfinished in the journal and the next recovery finishes it).
func (e *Engine) finish(ctx context.Context, id string, st State, msg string, result error) error {
	if err := e.j.SetOpState(ctx, id, st, msg); err != nil {
		e.log.Error("cannot record an operation's state", "op", id, "state", st, "err", err)
		return errors.Join(result, fmt.Errorf("journal: record operation %s as %s: %w", id, st, err))
	}
	return result
}

// recover finishes an unfinished operation from its journal: forward if
// its commit step is done and nothing was undone, else backward.
func (op *Op[D]) recover(ctx context.Context, e *Engine, rec Record) error {
	data, err := op.decode(rec.Data)
	if err != nil {
		return err
	}
	r := &runner[D]{e: e, op: op, run: &Run[D]{ID: rec.ID, Data: data, j: e.j}, journaled: rec.Data}
	commit := op.commit()
	touched, committed, undoing := -1, false, false
	done := map[int]bool{}
	for _, st := range rec.Steps {
		touched = max(touched, st.Seq)
		switch st.State {
		case StepDone:
			done[st.Seq] = true
			committed = committed || st.Seq == commit
		case StepUndoing, StepUndone:
			undoing = true
		}
	}
	if touched >= len(op.Steps) {
		return fault.Errorf(fault.Internal, "operation %s (%s): journal has step %d of %d", rec.ID, rec.Kind, touched, len(op.Steps))
	}
	e.log.Warn("recovering unfinished operation", "op", rec.ID, "kind", rec.Kind, "committed", committed && !undoing, "last_step", touched)
	if committed && !undoing {
		next := 0 // the first step not done is where a forward run resumes
		for done[next] {
			next++
		}
		return r.forward(ctx, next)
	}
	if err := r.backward(ctx, touched); err != nil {
		return e.finish(ctx, rec.ID, Failed, "rollback incomplete: "+err.Error(), err)
	}
	msg := rec.Error
	if msg == "" {
		msg = "interrupted; rolled back at recovery"
	}
	return e.finish(ctx, rec.ID, RolledBack, msg, nil)
}

// RecoverAll finishes every unfinished operation not running in this
// process and marked with its gateway (at start-up, from reconcile, after
// a take-over). One failing operation does
// not stop the others; their errors are joined.
func (e *Engine) RecoverAll(ctx context.Context) error {
	return e.recoverStates(ctx, Running, Failed)
}

// RetryFailed retries the operations that failed after their commit step
// or whose rollback did not finish (a dependency was down, an image was
// still busy). bmid calls it periodically.
func (e *Engine) RetryFailed(ctx context.Context) error {
	return e.recoverStates(ctx, Failed)
}

func (e *Engine) recoverStates(ctx context.Context, states ...State) error {
	e.recoverMu.Lock()
	defer e.recoverMu.Unlock()
	var errs []error
	for _, st := range states {
		ops, err := e.j.Ops(ctx, st, 0)
		if err != nil {
			return err
		}
		for _, o := range ops {
			if e.Live(o.ID) || o.Gateway != e.gateway {
				continue
			}
			if err := e.recoverOne(ctx, o.ID); err != nil {
				errs = append(errs, fmt.Errorf("operation %s (%s): %w", o.ID, o.Kind, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) recoverOne(ctx context.Context, id string) error {
	rec, err := e.j.Op(ctx, id)
	if err != nil {
		return err
	}
	def, ok := e.kinds[rec.Kind]
	if !ok {
		return fault.Errorf(fault.Internal, "unknown operation kind %q in the journal", rec.Kind)
	}
	return def.recover(ctx, e, rec)
}

// Unfinished counts the operations recovery would finish now.
func (e *Engine) Unfinished(ctx context.Context) (int, error) {
	n := 0
	for _, st := range []State{Running, Failed} {
		ops, err := e.j.Ops(ctx, st, 0)
		if err != nil {
			return 0, err
		}
		for _, o := range ops {
			if !e.Live(o.ID) && o.Gateway == e.gateway {
				n++
			}
		}
	}
	return n, nil
}
