package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// step is one idempotent action of an operation and the action that undoes
// it. Both read and write only the operation's data, so a step list can be
// rebuilt from the journal after a crash. Re-running a done step, and
// undoing a step that never acted, are harmless.
type step struct {
	name string
	do   func(ctx context.Context, r *opRun) error
	undo func(ctx context.Context, r *opRun) error
}

// plan is an operation before it runs.
type plan struct {
	kind    string
	project string
	target  string // the object the operation is about, for listings
	data    map[string]string
}

// opRun is the state of a running operation, shared by its steps.
type opRun struct {
	s    *Service
	id   string
	kind string
	data map[string]string
	// body is the stream an upload reads; it is not journaled (an
	// interrupted upload is rolled back, never resumed).
	body io.Reader
	size uint64
	// dirty is set when a step changes data; the engine persists it before
	// marking the step done.
	dirty bool
	mu    sync.Mutex
	last  time.Time
}

func (r *opRun) get(k string) string { return r.data[k] }

func (r *opRun) set(k, v string) {
	if r.data[k] != v {
		r.data[k] = v
		r.dirty = true
	}
}

// progress records an operation's progress, at most a few times a second.
func (r *opRun) progress(done, total uint64) {
	if total == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.last) < 250*time.Millisecond && done < total {
		return
	}
	r.last = time.Now()
	_ = r.s.store.SetOpProgress(context.WithoutCancel(context.Background()), r.id, float64(done)/float64(total))
}

type notifyKey struct{}

// WithOpNotify returns a context whose operations call fn with their id as
// soon as they are journaled, so a caller can return the id to poll while
// the operation goes on.
func WithOpNotify(ctx context.Context, fn func(id string)) context.Context {
	return context.WithValue(ctx, notifyKey{}, fn)
}

func newOpID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("op-%d", time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}

// run journals and executes an operation. Operations run to completion even
// if ctx is cancelled (the caller went away or the daemon is stopping): a
// half-done operation is worse than a late one, and a crash is covered by
// the journal.
func (s *Service) run(ctx context.Context, who Principal, p plan) (string, error) {
	return s.runWithBody(ctx, who, p, nil, 0)
}

// runWithBody is run for an operation that reads a stream (upload).
func (s *Service) runWithBody(ctx context.Context, who Principal, p plan, body io.Reader, size uint64) (string, error) {
	id := newOpID()
	if p.data == nil {
		p.data = map[string]string{}
	}
	op := Operation{ID: id, Kind: p.kind, Project: p.project, Target: p.target, Principal: who.User, State: OpRunning, Data: p.data}
	if err := s.store.CreateOp(ctx, op); err != nil {
		return "", fmt.Errorf("%s: journal: %w", p.kind, err)
	}
	s.setLive(id, true)
	defer s.setLive(id, false)
	if fn, ok := ctx.Value(notifyKey{}).(func(string)); ok {
		fn(id)
	}
	steps, err := s.stepsFor(p.kind)
	if err != nil {
		return id, err
	}
	r := &opRun{s: s, id: id, kind: p.kind, data: p.data, body: body, size: size}
	s.log.Info("operation started", "op", id, "kind", p.kind, "project", p.project, "target", p.target, "user", who.User)
	return id, s.forward(context.WithoutCancel(ctx), r, steps, s.commitOf(p.kind), 0)
}

// forward runs steps[from:]; on failure before the commit step it rolls
// back, after it it leaves the operation failed for a later retry.
func (s *Service) forward(ctx context.Context, r *opRun, steps []step, commit, from int) error {
	for i := from; i < len(steps); i++ {
		st := steps[i]
		s.crash(r.kind, i, "before")
		if err := s.store.MarkStep(ctx, r.id, i, st.name, StepDoing); err != nil {
			// Step i has not acted: steps up to i-1 are done.
			return s.abort(ctx, r, steps, i-1, i-1 >= commit, fmt.Errorf("%s: journal: %w", r.kind, err))
		}
		s.crash(r.kind, i, "doing")
		if err := st.do(ctx, r); err != nil {
			// Step i may have acted in part: undo it too.
			return s.abort(ctx, r, steps, i, i-1 >= commit, err)
		}
		s.crash(r.kind, i, "acted")
		if r.dirty {
			if err := s.store.SetOpData(ctx, r.id, r.data); err != nil {
				return s.abort(ctx, r, steps, i, i >= commit, fmt.Errorf("%s: journal: %w", r.kind, err))
			}
			r.dirty = false
		}
		if err := s.store.MarkStep(ctx, r.id, i, st.name, StepDone); err != nil {
			return s.abort(ctx, r, steps, i, i >= commit, fmt.Errorf("%s: journal: %w", r.kind, err))
		}
		s.crash(r.kind, i, "after")
	}
	if err := s.finish(ctx, r.id, OpDone, "", nil); err != nil {
		return fmt.Errorf("%s: %w", r.kind, err)
	}
	_ = s.store.SetOpProgress(ctx, r.id, 1)
	s.log.Info("operation done", "op", r.id, "kind", r.kind)
	return nil
}

// abort handles a failure: an operation whose commit step is done is left
// failed for a forward retry; any other is rolled back from step touched,
// the last step that may have acted.
func (s *Service) abort(ctx context.Context, r *opRun, steps []step, touched int, committed bool, cause error) error {
	if committed {
		s.log.Error("operation failed after commit; will be retried", "op", r.id, "kind", r.kind, "step", nameAt(steps, touched), "err", cause)
		return s.finish(ctx, r.id, OpFailed, cause.Error(), cause)
	}
	s.log.Warn("operation failed; rolling back", "op", r.id, "kind", r.kind, "step", nameAt(steps, touched), "err", cause)
	if err := s.backward(ctx, r, steps, touched); err != nil {
		return s.finish(ctx, r.id, OpFailed, fmt.Sprintf("%v; rollback incomplete: %v", cause, err),
			fmt.Errorf("%w (rollback incomplete, will be retried: %v)", cause, err))
	}
	return s.finish(ctx, r.id, OpRolledBack, cause.Error(), cause)
}

// finish records an operation's final state and returns result, joined with
// the journal's error when the state could not be recorded (the operation
// then stays "running" in the journal and the next recovery finishes it).
func (s *Service) finish(ctx context.Context, id string, st OpState, msg string, result error) error {
	if err := s.store.SetOpState(ctx, id, st, msg); err != nil {
		s.log.Error("cannot record an operation's state", "op", id, "state", st, "err", err)
		return errors.Join(result, fmt.Errorf("journal: record operation %s as %s: %w", id, st, err))
	}
	return result
}

func nameAt(steps []step, i int) string {
	if i < 0 || i >= len(steps) {
		return "journal"
	}
	return steps[i].name
}

// backward undoes steps[from] down to steps[0].
func (s *Service) backward(ctx context.Context, r *opRun, steps []step, from int) error {
	for j := from; j >= 0; j-- {
		st := steps[j]
		if st.undo == nil {
			continue
		}
		s.crash(r.kind, j, "undoing")
		if err := s.store.MarkStep(ctx, r.id, j, st.name, StepUndoing); err != nil {
			return err
		}
		if err := st.undo(ctx, r); err != nil {
			return fmt.Errorf("undo %s: %w", st.name, err)
		}
		s.crash(r.kind, j, "unacted")
		if err := s.store.MarkStep(ctx, r.id, j, st.name, StepUndone); err != nil {
			return err
		}
		s.crash(r.kind, j, "undone")
	}
	return nil
}

func (s *Service) setLive(id string, on bool) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	if on {
		s.live[id] = true
	} else {
		delete(s.live, id)
	}
}

func (s *Service) isLive(id string) bool {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	return s.live[id]
}

// recoverOp finishes an unfinished operation from its journal: forward if
// its commit step is done and nothing was undone, else backward.
func (s *Service) recoverOp(ctx context.Context, op Operation) error {
	steps, err := s.stepsFor(op.Kind)
	if err != nil {
		return err
	}
	commit := s.commitOf(op.Kind)
	r := &opRun{s: s, id: op.ID, kind: op.Kind, data: op.Data}
	touched, nextForward, undoing := -1, 0, false
	committed := false
	for _, st := range op.Steps {
		if st.Seq > touched {
			touched = st.Seq
		}
		switch st.State {
		case StepDone:
			if st.Seq == commit {
				committed = true
			}
		case StepUndoing, StepUndone:
			undoing = true
		}
	}
	// The first step not done is where a forward run resumes.
	done := map[int]bool{}
	for _, st := range op.Steps {
		if st.State == StepDone {
			done[st.Seq] = true
		}
	}
	for done[nextForward] {
		nextForward++
	}
	if touched >= len(steps) {
		return fault.Errorf(fault.Internal, "operation %s (%s): journal has step %d of %d", op.ID, op.Kind, touched, len(steps))
	}
	s.log.Warn("recovering unfinished operation", "op", op.ID, "kind", op.Kind, "committed", committed && !undoing, "last_step", touched)
	if committed && !undoing {
		return s.forward(ctx, r, steps, commit, nextForward)
	}
	if err := s.backward(ctx, r, steps, touched); err != nil {
		return s.finish(ctx, op.ID, OpFailed, "rollback incomplete: "+err.Error(), err)
	}
	msg := op.Error
	if msg == "" {
		msg = "interrupted; rolled back at recovery"
	}
	return s.store.SetOpState(ctx, op.ID, OpRolledBack, msg)
}

// RecoverAll finishes every unfinished operation (at start-up, and from
// Reconcile). Errors are collected; one failing operation does not stop
// the others.
func (s *Service) RecoverAll(ctx context.Context) error {
	s.recoverMu.Lock()
	defer s.recoverMu.Unlock()
	var errs []error
	for _, st := range []OpState{OpRunning, OpFailed} {
		ops, err := s.store.Ops(ctx, st, 0)
		if err != nil {
			return err
		}
		for _, o := range ops {
			if s.isLive(o.ID) {
				continue
			}
			full, err := s.store.Op(ctx, o.ID)
			if err == nil {
				err = s.recoverOp(ctx, full)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("operation %s (%s): %w", o.ID, o.Kind, err))
			}
		}
	}
	return errors.Join(errs...)
}

// RetryFailed retries the operations that failed after their commit step
// or whose rollback did not finish (a dependency was down, or an image was
// still busy). bmid calls it periodically. It never touches an operation
// that is running in this process.
func (s *Service) RetryFailed(ctx context.Context) error {
	s.recoverMu.Lock()
	defer s.recoverMu.Unlock()
	ops, err := s.store.Ops(ctx, OpFailed, 0)
	if err != nil || len(ops) == 0 {
		return err
	}
	var errs []error
	for _, o := range ops {
		full, err := s.store.Op(ctx, o.ID)
		if err == nil {
			err = s.recoverOp(ctx, full)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("operation %s (%s): %w", o.ID, o.Kind, err))
		}
	}
	return errors.Join(errs...)
}

// crash is the test hook: tests kill the process at a given step and phase.
func (s *Service) crash(kind string, seq int, phase string) {
	if s.crashHook != nil {
		s.crashHook(kind, seq, phase)
	}
}
