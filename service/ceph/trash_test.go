//go:build ceph_preview

package ceph

import (
	"context"
	"errors"
	"testing"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/service/fault"
)

// TestTrashedSnapshot: a snapshot librbd moved to its trash namespace (here
// because a format-2 clone still uses it; a removal killed half-way leaves
// one too) is not one of the image's snapshots for ListSnapshots and Stat,
// and RemoveSnapshot by its old name finds it: refused while the clone
// uses it, "not found" only once librbd deleted it with its last clone.
func TestTrashedSnapshot(t *testing.T) {
	s, p := newStore(t)
	ctx := context.Background()
	conf, pool, _ := cephtest.Pool(t)
	img, kid := p+"trashsrc", p+"trashkid"
	must(t, s.Create(ctx, img, 4<<20))
	t.Cleanup(func() { _, _ = cephtest.RBD(conf, pool, "rm", kid); _, _ = cephtest.RBD(conf, pool, "rm", img) })
	must(t, s.CreateSnapshot(ctx, img, "s1"))
	must(t, s.CreateSnapshot(ctx, img, "keep"))
	// A format-2 clone needs no protection; removing its parent snapshot
	// moves it to the trash namespace.
	if out, err := cephtest.RBD(conf, pool, "clone", "--rbd-default-clone-format", "2", img+"@s1", kid); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := cephtest.RBD(conf, pool, "snap", "rm", img+"@s1"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	snaps, err := s.ListSnapshots(ctx, img)
	must(t, err)
	if len(snaps) != 1 || snaps[0].Name != "keep" {
		t.Fatalf("ListSnapshots = %+v, want only keep (the trashed one is librbd's)", snaps)
	}
	info, err := s.Stat(ctx, img)
	must(t, err)
	if len(info.Snapshots) != 1 {
		t.Fatalf("Stat lists snapshots %+v, want only keep", info.Snapshots)
	}
	if err := s.RemoveSnapshot(ctx, img, "s1"); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("RemoveSnapshot of the trashed snapshot a clone uses = %v, want a conflict", err)
	}
	must(t, s.Remove(ctx, kid)) // librbd deletes the trashed snapshot with its last clone
	if err := s.RemoveSnapshot(ctx, img, "s1"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("RemoveSnapshot once nothing is left = %v, want not found", err)
	}
	must(t, s.RemoveSnapshot(ctx, img, "keep"))
	must(t, s.Remove(ctx, img))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
