package core_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

// flakyJournal fails the journal write of one step state.
type flakyJournal struct {
	*store.DB
	seq   int
	state core.StepState
	armed bool
}

func (f *flakyJournal) MarkStep(ctx context.Context, op string, seq int, name string, st core.StepState) error {
	if f.armed && seq == f.seq && st == f.state {
		f.armed = false
		return fault.Errorf(fault.Unavailable, "journal write failed (injected)")
	}
	return f.DB.MarkStep(ctx, op, seq, name, st)
}

// TestJournalWriteFailure: when the journal cannot be written, an
// operation before its commit step is rolled back, and one after it is left
// for a forward retry, which finishes it.
func TestJournalWriteFailure(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		seq       int
		state     core.StepState
		run       func(svc *core.Service) error
		wantState core.OpState
	}{
		"before commit: rolled back": {seq: 2, state: core.StepDoing, wantState: core.OpRolledBack,
			run: func(svc *core.Service) error {
				_, err := svc.CreateDisk(ctx, alice, "tenant-a", "debian", "d1")
				return err
			}},
		"after commit: retried forward": {seq: 1, state: core.StepDoing, wantState: core.OpFailed,
			run: func(svc *core.Service) error { return svc.DeleteDisk(ctx, alice, "tenant-a", "d0") }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := seeded(t)
			e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "d0"))
			j := &flakyJournal{DB: e.db, seq: tc.seq, state: tc.state, armed: true}
			svc, err := core.New(core.Config{UID: uid, Snapshot: "bmi-snap", IQNPrefix: "iqn.2026-11.org.bmi", AdminProject: "bmi_infra",
				ProvisioningNetwork: "bmi-provision", Channel: "vlan/native"},
				core.Deps{Projects: j, Rows: j, Targets: j, Boots: j, Leases: j, Journal: j, Images: e.images, Exporter: e.exp, Files: e.files, Nodes: e.hil, Networks: e.nets, Auth: e.hil, Log: logging.Discard()})
			if err != nil {
				t.Fatal(err)
			}
			wantKind(t, tc.run(svc), fault.Unavailable)
			ops, _ := e.db.Ops(ctx, tc.wantState, 0)
			if len(ops) != 1 {
				t.Fatalf("want one %s operation, got %+v", tc.wantState, ops)
			}
			if err := svc.RetryFailed(ctx); err != nil {
				t.Fatal(err)
			}
			e.checkConsistent()
		})
	}
}

// stateJournal fails every write of one operation state.
type stateJournal struct {
	*store.DB
	fail core.OpState
}

func (f *stateJournal) SetOpState(ctx context.Context, id string, st core.OpState, msg string) error {
	if st == f.fail {
		return fault.Errorf(fault.Unavailable, "journal write of %s failed (injected)", st)
	}
	return f.DB.SetOpState(ctx, id, st, msg)
}

// TestOpStateWriteFailure: when the journal cannot record how an operation
// ended, the caller hears of it (not only of the operation's own error),
// and the operation stays unfinished for recovery, which finishes it.
func TestOpStateWriteFailure(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		fail   core.OpState
		inject func(e *env)
		run    func(svc *core.Service) error
	}{
		"rolled back": {fail: core.OpRolledBack, inject: func(e *env) { e.exp.Fail = fault.Errorf(fault.Invalid, "injected") },
			run: func(svc *core.Service) error { return second(svc.CreateDisk(ctx, alice, "tenant-a", "debian", "d1")) }},
		"failed after commit": {fail: core.OpFailed, inject: func(e *env) { e.images.Fail["Remove"] = fault.Errorf(fault.Invalid, "injected") },
			run: func(svc *core.Service) error { return svc.DeleteDisk(ctx, alice, "tenant-a", "d0") }},
		"done": {fail: core.OpDone,
			run: func(svc *core.Service) error { return second(svc.CreateDisk(ctx, alice, "tenant-a", "debian", "d1")) }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := seeded(t)
			e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "d0"))
			j := &stateJournal{DB: e.db, fail: tc.fail}
			svc, err := core.New(core.Config{UID: uid, Snapshot: "bmi-snap", IQNPrefix: "iqn.2026-11.org.bmi", AdminProject: "bmi_infra",
				ProvisioningNetwork: "bmi-provision", Channel: "vlan/native"},
				core.Deps{Projects: j, Rows: j, Targets: j, Boots: j, Leases: j, Journal: j, Images: e.images, Exporter: e.exp, Files: e.files, Nodes: e.hil, Networks: e.nets, Auth: e.hil, Log: logging.Discard()})
			if err != nil {
				t.Fatal(err)
			}
			if tc.inject != nil {
				tc.inject(e)
			}
			err = tc.run(svc)
			if err == nil || !strings.Contains(err.Error(), "journal: record operation") {
				t.Fatalf("error %v does not say the journal failed", err)
			}
			if ops, _ := e.db.Ops(ctx, core.OpRunning, 0); len(ops) != 1 {
				t.Fatalf("want the operation still running in the journal, got %+v", ops)
			}
			e.images.Fail, e.exp.Fail = map[string]error{}, nil
			if _, err := e.svc.Start(ctx); err != nil {
				t.Fatal(err)
			}
			e.checkConsistent()
		})
	}
}
