package core_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/bmi-go/bmi/service/core"
)

// TestRecoverOldJournal: operations journaled by a bmid from before typed
// data (their data a flat JSON object of strings) are recovered by this
// one: a disk creation interrupted before its commit is rolled back, a
// provision interrupted after it is finished.
func TestRecoverOldJournal(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		// crashed makes the state the old bmid left and returns its
		// journal entry (data, and the last step done; the next is doing).
		crashed func(e *env, debian core.Image) (data map[string]string, kind string, lastDone int)
		want    func(e *env) string // the state recovery must reach; nil: the state before
	}{
		"create disk, before the commit": {
			crashed: func(e *env, debian core.Image) (map[string]string, string, int) {
				im, err := e.db.InsertImage(ctx, core.Image{Project: "tenant-a", Name: "d1", Kind: core.KindDisk, ParentID: debian.ID,
					State: core.StatePending, OpID: "old1"}, uid)
				e.ok(err)
				e.ok(e.images.Clone(ctx, debian.CephName, "bmi-snap", im.CephName))
				return map[string]string{"project": "tenant-a", "name": "d1", "kind": "disk", "parent_id": itoa(debian.ID),
					"from": debian.CephName, "from_snap": "bmi-snap", "image_id": itoa(im.ID), "ceph": im.CephName}, "create-disk", 1
			},
		},
		"provision, before the commit": {
			crashed: func(e *env, debian core.Image) (map[string]string, string, int) {
				// All but "mark ready" done: a provision run, its disk
				// pending again.
				e.must(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0"))
				d, err := e.db.Image(ctx, "tenant-a", "node1")
				e.ok(err)
				e.ok(e.db.SetImageState(ctx, d.ID, core.StatePending, "old1"))
				return map[string]string{"project": "tenant-a", "name": "node1", "kind": "disk", "parent_id": itoa(debian.ID),
					"from": debian.CephName, "from_snap": "bmi-snap", "image_id": itoa(d.ID), "ceph": d.CephName,
					"node": "node1", "nic": "eth0", "mac": "52:54:00:00:00:01", "owns_disk": "1",
					"network": "bmi-provision", "channel": "vlan/native"}, "provision", 6
			},
		},
		"deprovision, after the commit": {
			crashed: func(e *env, debian core.Image) (map[string]string, string, int) {
				e.must(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0"))
				d, err := e.db.Image(ctx, "tenant-a", "node1")
				e.ok(err)
				e.ok(e.db.SetImageState(ctx, d.ID, core.StateDeleting, "old1"))
				return map[string]string{"node": "node1", "nic": "eth0", "mac": "52:54:00:00:00:01", "image_id": itoa(d.ID),
					"ceph": d.CephName, "project": "tenant-a", "network": "bmi-provision"}, "deprovision", 0
			},
			want: func(*env) string { return seeded(t).state() }, // deprovision undoes provision
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := seeded(t)
			before := e.state()
			debian, err := e.db.Image(ctx, "tenant-a", "debian")
			e.ok(err)
			data, kind, lastDone := tc.crashed(e, debian)
			want := before
			if tc.want != nil {
				want = tc.want(e)
			}
			flat, _ := json.Marshal(data)
			e.ok(e.db.CreateOp(ctx, core.Operation{ID: "old1", Kind: kind, Project: "tenant-a", State: core.OpRunning, Data: flat}))
			for i := 0; i <= lastDone+1; i++ {
				st := core.StepDone
				if i == lastDone+1 {
					st = core.StepDoing
				}
				e.ok(e.db.MarkStep(ctx, "old1", i, e.svc.Kinds()[kind][i], st))
			}
			again := openEnv(t, e.dir)
			if _, err := again.svc.Start(ctx); err != nil {
				t.Fatal(err)
			}
			again.checkConsistent()
			if got := again.state(); got != want {
				t.Fatalf("recovered to:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
