package core_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// TestReconcileFix: reconcile reports orphans and strays and leaves them
// listed in Left; with fix it removes them (a half-removed image too) and
// lists in Left only what it cannot remove, with why.
func TestReconcileFix(t *testing.T) {
	ctx := context.Background()
	strays := func(e *env) {
		e.images.Create(uid+"img999", "orphan", 1<<20)
		e.images.Create(uid+"img998", "half", 1<<20)
		e.images.Images[uid+"img998"].HalfRemoved = true
		e.ok(e.exp.Export(ctx, core.ExportSpec{IQN: "iqn.2026-11.org.bmi:stray", CephName: "x"}))
		e.ok(e.files.Write(ctx, core.BootFile{Node: "ghost", MAC: "52:54:00:00:00:99"}))
	}
	tests := map[string]struct {
		fix       bool
		inject    func(e *env)
		wantLeft  []string // substrings, one per entry of Left
		wantFixed bool
		wantPool  int // images with BMI's prefix left in the pool
	}{
		"report only": {fix: false, wantPool: 3, wantLeft: []string{
			"t1img999: not fixed", "t1img998: not fixed", "stray: not fixed", "ghost: not fixed"}},
		"fix": {fix: true, wantFixed: true, wantPool: 1},
		"fix, a removal fails": {fix: true, wantPool: 3,
			inject:   func(e *env) { e.images.Fail["Remove"] = fault.Errorf(fault.Unavailable, "injected") },
			wantLeft: []string{"t1img999: not removed: ", "t1img998: not removed: "}},
		"fix, a row lost its image": {fix: true, wantPool: 0,
			inject:   func(e *env) { delete(e.images.Images, e.cephOf("tenant-a", "debian")) },
			wantLeft: []string{"tenant-a/debian (t1img1): its data is gone"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := seeded(t)
			strays(e)
			if tc.inject != nil {
				tc.inject(e)
			}
			rep, err := e.svc.Reconcile(ctx, admin, tc.fix)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Left) != len(tc.wantLeft) {
				t.Fatalf("left %q, want %d entries like %q", rep.Left, len(tc.wantLeft), tc.wantLeft)
			}
			for i, w := range tc.wantLeft {
				if !strings.Contains(strings.Join(rep.Left, "\n"), w) {
					t.Errorf("left %q has no entry %d like %q", rep.Left, i, w)
				}
			}
			if rep.Fixed != tc.wantFixed {
				t.Errorf("fixed = %v, want %v", rep.Fixed, tc.wantFixed)
			}
			if len(rep.OrphanImages) != 2 || len(rep.StrayTargets) != 1 || len(rep.StrayBootFiles) != 1 {
				t.Errorf("report %+v does not list the 2 orphans, the stray target and the stray boot file", rep)
			}
			pool, _ := e.images.List(ctx, uid)
			if len(pool) != tc.wantPool {
				t.Errorf("pool has %v, want %d images", pool, tc.wantPool)
			}
		})
	}
}

func (e *env) cephOf(project, name string) string {
	e.t.Helper()
	im, err := e.db.Image(context.Background(), project, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return im.CephName
}

// TestStartReexports: after a restart (the target forgot every export),
// Start exports every disk of the database again, several at a time, each
// exactly as before, and reports them sorted; it leaves the audit of
// orphans and strays to Audit, so running nodes do not wait for it; a disk
// that fails to export is a problem in the report, not a stop.
func TestStartReexports(t *testing.T) {
	ctx := context.Background()
	e := seeded(t)
	const disks = 40
	for i := range disks {
		e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", fmt.Sprintf("d%02d", i)))
	}
	before := map[string]core.ExportSpec{}
	for k, v := range e.exp.Targets {
		before[k] = v
	}
	e.images.Create(uid+"img999", "orphan", 1<<20)
	e.exp.Targets = map[string]core.ExportSpec{} // bmid restarted
	rep, err := e.svc.Start(ctx)
	if err != nil || len(rep.Errors) != 0 {
		t.Fatalf("Start = %+v, %v", rep, err)
	}
	if len(rep.Reexported) != len(before) || !sort.StringsAreSorted(rep.Reexported) {
		t.Fatalf("re-exported %d disks (sorted %v), want %d", len(rep.Reexported), sort.StringsAreSorted(rep.Reexported), len(before))
	}
	if !reflect.DeepEqual(e.exp.Targets, before) {
		t.Fatal("the exports after Start differ from those before the restart")
	}
	if len(rep.OrphanImages) != 0 {
		t.Fatalf("Start audited orphans (%v): that is Audit's, after bmid serves", rep.OrphanImages)
	}
	if a, err := e.svc.Audit(ctx); err != nil || len(a.OrphanImages) != 1 {
		t.Fatalf("Audit = %+v, %v; want the orphan", a, err)
	}
	e.exp.Targets = map[string]core.ExportSpec{}
	e.exp.Fail = fault.Errorf(fault.Unavailable, "injected")
	rep, err = e.svc.Start(ctx)
	if err != nil || len(rep.Errors) != len(before) || len(rep.Reexported) != 0 {
		t.Fatalf("Start with failing exports = %d errors, %d re-exported, %v; want %d errors", len(rep.Errors), len(rep.Reexported), err, len(before))
	}
}
