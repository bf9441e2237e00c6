//go:build ceph_preview

package ceph

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/bmi-go/bmi/service/fault"
)

// TestRecipes runs BMI's RBD recipes end to end: import of a golden image
// into a BMI image, provisioning a node's clone, a node snapshot, and the
// removals that must be refused while clones exist.
func TestRecipes(t *testing.T) {
	t.Parallel()
	s, p := newStore(t)
	ctx := context.Background()
	golden, image, node, nodeSnap := p+"golden", p+"uidimg1", p+"uidimg2", p+"uidimg3"
	const snap = "bmi-snap"
	size := uint64(16 << 20)

	// a golden image from outside
	data := bytes.Repeat(pattern(1<<20, 42), 16)
	mustOK(t, s.Import(ctx, golden, bytes.NewReader(data), size, nil))

	t.Run("import recipe", func(t *testing.T) {
		// snap → protect → clone → flatten → snap → protect → unprotect/remove the temporary snapshot
		mustOK(t, s.CreateSnapshot(ctx, golden, snap))
		mustOK(t, s.ProtectSnapshot(ctx, golden, snap))
		mustOK(t, s.Clone(ctx, golden, snap, image))
		mustOK(t, s.Flatten(ctx, image, nil))
		mustOK(t, s.CreateSnapshot(ctx, image, snap))
		mustOK(t, s.ProtectSnapshot(ctx, image, snap))
		mustOK(t, s.UnprotectSnapshot(ctx, golden, snap))
		mustOK(t, s.RemoveSnapshot(ctx, golden, snap))

		g, err := s.Stat(ctx, golden)
		mustOK(t, err)
		if len(g.Snapshots) != 0 || len(g.Children) != 0 {
			t.Errorf("golden image keeps %v / %v: the temporary snapshot leaked", g.Snapshots, g.Children)
		}
		im, err := s.Stat(ctx, image)
		mustOK(t, err)
		if im.Parent != nil || len(im.Snapshots) != 1 || !im.Snapshots[0].Protected {
			t.Errorf("BMI image = %+v, want no parent and one protected snapshot", im)
		}
		assertData(t, s, image, 5<<20, pattern(1<<20, 42))
	})

	t.Run("provision clone", func(t *testing.T) {
		mustOK(t, s.Clone(ctx, image, snap, node))
		n, err := s.Stat(ctx, node)
		mustOK(t, err)
		if n.Parent == nil || n.Parent.Image != image || n.Parent.Snapshot != snap {
			t.Fatalf("node clone parent = %v", n.Parent)
		}
		assertData(t, s, node, 0, pattern(1<<20, 42))
		// the node writes to its disk
		img, err := s.Open(ctx, node)
		mustOK(t, err)
		_, err = img.WriteAt(pattern(8192, 77), 3<<20)
		mustOK(t, err)
		mustOK(t, img.Close())
	})

	t.Run("node snapshot is a deep copy, protected", func(t *testing.T) {
		mustOK(t, s.DeepCopy(ctx, node, nodeSnap))
		mustOK(t, s.CreateSnapshot(ctx, nodeSnap, snap))
		mustOK(t, s.ProtectSnapshot(ctx, nodeSnap, snap))
		ns, err := s.Stat(ctx, nodeSnap)
		mustOK(t, err)
		if ns.Parent == nil || ns.Parent.Image != image {
			t.Errorf("deep copy of a clone: parent %v, want %s@%s (only the clone's own data is copied)", ns.Parent, image, snap)
		}
		assertData(t, s, nodeSnap, 3<<20, pattern(8192, 77))
		assertData(t, s, nodeSnap, 0, pattern(1<<20, 42))
		// another node can boot the snapshot
		mustOK(t, s.Clone(ctx, nodeSnap, snap, p+"uidimg4"))
		assertData(t, s, p+"uidimg4", 3<<20, pattern(8192, 77))
	})

	t.Run("removal with clones is refused", func(t *testing.T) {
		before := poolState(t, s, p)
		for name, err := range map[string]error{
			"remove image with snapshot": s.Remove(ctx, image),
			"unprotect with clones":      s.UnprotectSnapshot(ctx, image, snap),
			"remove protected snapshot":  s.RemoveSnapshot(ctx, image, snap),
			"remove snapshot image":      s.Remove(ctx, nodeSnap),
		} {
			if fault.Of(err) != fault.Conflict {
				t.Errorf("%s: %v, want conflict", name, err)
			}
		}
		if after := poolState(t, s, p); after != before {
			t.Fatalf("pool changed:\n%s\n%s", before, after)
		}
	})

	// teardown in the order BMI uses: clones, then snapshots, then images
	cleanup(t, s, p+"uidimg4", nodeSnap, node, image, golden)
}

// TestFlattenCancel cancels a flatten halfway: the clone keeps its parent
// and its data, and a second flatten finishes the job.
func TestFlattenCancel(t *testing.T) {
	t.Parallel()
	s, p := newStore(t)
	ctx := context.Background()
	size := uint64(256 << 20) // 64 objects
	parentWithSnap(t, s, p+"par", size, 11)
	mustOK(t, s.Clone(ctx, p+"par", "s", p+"kid"))

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var calls atomic.Int64
	err := s.Flatten(cctx, p+"kid", func(done, total uint64) {
		calls.Add(1)
		if done >= total/4 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled flatten returned %v (%d progress calls), want context.Canceled", err, calls.Load())
	}
	kid, err := s.Stat(ctx, p+"kid")
	mustOK(t, err)
	if kid.Parent == nil || kid.Parent.Image != p+"par" {
		t.Fatalf("after a cancelled flatten the clone's parent is %v, want %spar@s", kid.Parent, p)
	}
	assertData(t, s, p+"kid", 200<<20, pattern(1<<20, 11))
	mustOK(t, s.Flatten(ctx, p+"kid", nil))
	kid, err = s.Stat(ctx, p+"kid")
	mustOK(t, err)
	if kid.Parent != nil {
		t.Fatalf("second flatten left parent %v", kid.Parent)
	}
	assertData(t, s, p+"kid", 254<<20, pattern(1<<20, 11))
	cleanup(t, s, p+"kid", p+"par")
}

// cancelReader yields n bytes of a pattern and calls onHalf once half has
// been read.
type cancelReader struct {
	left, half int
	onHalf     func()
	fail       error
}

func (r *cancelReader) Read(b []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.left <= r.half && r.onHalf != nil {
		r.onHalf()
		r.onHalf = nil
		if r.fail != nil {
			return 0, r.fail
		}
	}
	n := min(len(b), r.left, 256<<10)
	copy(b, pattern(n, byte(r.left>>20)))
	r.left -= n
	return n, nil
}

// TestImportCancel stops imports halfway, by cancellation and by a failing
// source, and shows that nothing is left in the pool.
func TestImportCancel(t *testing.T) {
	t.Parallel()
	s, p := newStore(t)
	ctx := context.Background()
	const size = 64 << 20
	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var progressed atomic.Uint64
		r := &cancelReader{left: size, half: size / 2, onHalf: cancel}
		err := s.Import(cctx, p+"imp", r, size, func(done, _ uint64) { progressed.Store(done) })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled import returned %v, want context.Canceled", err)
		}
		if progressed.Load() == 0 {
			t.Error("no progress before the cancel: the import did not get halfway")
		}
		assertNothing(t, s, p)
	})
	t.Run("source fails", func(t *testing.T) {
		boom := errors.New("disk read error")
		r := &cancelReader{left: size, half: size / 2, onHalf: func() {}, fail: boom}
		err := s.Import(ctx, p+"imp", r, size, nil)
		if !errors.Is(err, boom) {
			t.Fatalf("import with a failing source returned %v, want %v", err, boom)
		}
		assertNothing(t, s, p)
	})
}

// failWriter accepts n bytes, then calls onFull once and fails with err
// (or goes on accepting when err is nil).
type failWriter struct {
	n      int
	onFull func()
	err    error
}

func (w *failWriter) Write(b []byte) (int, error) {
	if w.n <= 0 {
		if w.onFull != nil {
			w.onFull()
			w.onFull = nil
		}
		if w.err == nil {
			return len(b), nil
		}
		return 0, w.err
	}
	w.n -= len(b)
	return len(b), nil
}

// TestExportStops stops exports halfway, by cancellation and by a failing
// destination: the error says so and the image is unchanged and not held
// open.
func TestExportStops(t *testing.T) {
	t.Parallel()
	s, p := newStore(t)
	ctx := context.Background()
	mustOK(t, s.Create(ctx, p+"exp", 64<<20))
	fill(t, s, p+"exp", 64<<20, 4)
	before := poolState(t, s, p)
	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w := &failWriter{n: 32 << 20, onFull: cancel, err: nil}
		err := s.Export(cctx, p+"exp", w, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled export returned %v, want context.Canceled", err)
		}
	})
	t.Run("destination fails", func(t *testing.T) {
		boom := errors.New("disk full")
		err := s.Export(ctx, p+"exp", &failWriter{n: 8 << 20, err: boom}, nil)
		if !errors.Is(err, boom) {
			t.Fatalf("export to a failing writer returned %v, want %v", err, boom)
		}
	})
	if after := poolState(t, s, p); after != before {
		t.Fatalf("export changed the pool:\n%s\n%s", before, after)
	}
	cleanup(t, s, p+"exp")
}

func assertNothing(t *testing.T, s *Store, prefix string) {
	t.Helper()
	if st := poolState(t, s, prefix); st != "" {
		t.Fatalf("left behind:\n%s", st)
	}
}
