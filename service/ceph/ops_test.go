//go:build ceph_preview

package ceph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/bmi-go/bmi/internal/cephtest"
)

// TestOperations checks every operation's success path against the real
// cluster; each case cleans up after itself (the leftover check runs at the
// end of the test).
func TestOperations(t *testing.T) {
	t.Parallel()
	s, p := newStore(t)
	ctx := context.Background()
	conf, pool := clusterOf(t)
	tests := map[string]func(t *testing.T, p string){
		"create stat exists list": func(t *testing.T, p string) {
			mustOK(t, s.Create(ctx, p+"a", 10<<20))
			info, err := s.Stat(ctx, p+"a")
			mustOK(t, err)
			if info.Size != 10<<20 || info.ObjectSize != 4<<20 || info.Parent != nil || len(info.Snapshots) != 0 || len(info.Children) != 0 {
				t.Errorf("stat = %+v", info)
			}
			for _, f := range []string{"layering", "exclusive-lock", "object-map", "fast-diff", "deep-flatten"} {
				if !slices.Contains(info.Features, f) {
					t.Errorf("feature %s missing: %v", f, info.Features)
				}
			}
			ok, err := s.Exists(ctx, p+"a")
			if !ok || err != nil {
				t.Errorf("Exists(a) = %v, %v", ok, err)
			}
			ok, err = s.Exists(ctx, p+"b")
			if ok || err != nil {
				t.Errorf("Exists(b) = %v, %v", ok, err)
			}
			cleanup(t, s, p+"a")
		},
		"list by prefix": func(t *testing.T, p string) {
			for _, n := range []string{"x2", "x1", "y1"} {
				mustOK(t, s.Create(ctx, p+n, 1<<20))
			}
			got, err := s.List(ctx, p+"x")
			mustOK(t, err)
			if want := []string{p + "x1", p + "x2"}; !slices.Equal(got, want) {
				t.Errorf("List = %v, want %v", got, want)
			}
			cleanup(t, s, p+"x1", p+"x2", p+"y1")
		},
		"rename": func(t *testing.T, p string) {
			mustOK(t, s.Create(ctx, p+"old", 1<<20))
			fill(t, s, p+"old", 1<<20, 3)
			mustOK(t, s.Rename(ctx, p+"old", p+"new"))
			if ok, _ := s.Exists(ctx, p+"old"); ok {
				t.Error("old name still exists")
			}
			assertData(t, s, p+"new", 0, pattern(1<<20, 3))
			cleanup(t, s, p+"new")
		},
		"snapshots": func(t *testing.T, p string) {
			mustOK(t, s.Create(ctx, p+"a", 4<<20))
			mustOK(t, s.CreateSnapshot(ctx, p+"a", "s2"))
			mustOK(t, s.CreateSnapshot(ctx, p+"a", "s1"))
			mustOK(t, s.ProtectSnapshot(ctx, p+"a", "s1"))
			mustOK(t, s.ProtectSnapshot(ctx, p+"a", "s1")) // idempotent
			snaps, err := s.ListSnapshots(ctx, p+"a")
			mustOK(t, err)
			if len(snaps) != 2 || snaps[0].Name != "s2" || snaps[1].Name != "s1" || snaps[0].Protected || !snaps[1].Protected || snaps[0].Size != 4<<20 {
				t.Errorf("snapshots = %+v, want s2 (unprotected) then s1 (protected)", snaps)
			}
			mustOK(t, s.UnprotectSnapshot(ctx, p+"a", "s1"))
			mustOK(t, s.UnprotectSnapshot(ctx, p+"a", "s1")) // idempotent
			mustOK(t, s.RemoveSnapshot(ctx, p+"a", "s1"))
			mustOK(t, s.RemoveSnapshot(ctx, p+"a", "s2"))
			snaps, err = s.ListSnapshots(ctx, p+"a")
			if err != nil || len(snaps) != 0 {
				t.Errorf("after removal: %+v, %v", snaps, err)
			}
			cleanup(t, s, p+"a")
		},
		"clone reads parent, writes its own": func(t *testing.T, p string) {
			parentWithSnap(t, s, p+"par", 8<<20, 5)
			mustOK(t, s.Clone(ctx, p+"par", "s", p+"kid"))
			kid, err := s.Stat(ctx, p+"kid")
			mustOK(t, err)
			if kid.Parent == nil || kid.Parent.Image != p+"par" || kid.Parent.Snapshot != "s" || kid.Parent.Pool != pool {
				t.Errorf("clone parent = %+v", kid.Parent)
			}
			par, err := s.Stat(ctx, p+"par")
			mustOK(t, err)
			if !slices.Equal(par.Children, []string{p + "kid"}) {
				t.Errorf("parent children = %v", par.Children)
			}
			assertData(t, s, p+"kid", 0, pattern(1<<20, 5))
			img, err := s.Open(ctx, p+"kid")
			mustOK(t, err)
			_, err = img.WriteAt(pattern(4096, 6), 0)
			mustOK(t, err)
			mustOK(t, img.Close())
			assertData(t, s, p+"kid", 0, pattern(4096, 6))
			assertData(t, s, p+"par", 0, pattern(1<<20, 5))
			cleanup(t, s, p+"kid", p+"par")
		},
		"flatten with progress": func(t *testing.T, p string) {
			parentWithSnap(t, s, p+"par", 16<<20, 7)
			mustOK(t, s.Clone(ctx, p+"par", "s", p+"kid"))
			var calls []uint64
			mustOK(t, s.Flatten(ctx, p+"kid", func(done, total uint64) {
				if total != 16<<20 {
					t.Errorf("progress total %d, want %d", total, 16<<20)
				}
				calls = append(calls, done)
			}))
			if len(calls) < 2 || !slices.IsSorted(calls) || calls[len(calls)-1] != 16<<20 {
				t.Errorf("progress calls %v: want increasing up to the size", calls)
			}
			kid, err := s.Stat(ctx, p+"kid")
			mustOK(t, err)
			if kid.Parent != nil {
				t.Errorf("flattened clone still has parent %v", kid.Parent)
			}
			mustOK(t, s.UnprotectSnapshot(ctx, p+"par", "s")) // no children any more
			assertData(t, s, p+"kid", 0, pattern(1<<20, 7))
			cleanup(t, s, p+"kid", p+"par")
		},
		"deep copy keeps data and snapshots": func(t *testing.T, p string) {
			mustOK(t, s.Create(ctx, p+"src", 8<<20))
			fill(t, s, p+"src", 8<<20, 8)
			mustOK(t, s.CreateSnapshot(ctx, p+"src", "s"))
			mustOK(t, s.DeepCopy(ctx, p+"src", p+"dst"))
			dst, err := s.Stat(ctx, p+"dst")
			mustOK(t, err)
			if dst.Size != 8<<20 || len(dst.Snapshots) != 1 || dst.Snapshots[0].Name != "s" {
				t.Errorf("deep copy = %+v", dst)
			}
			assertData(t, s, p+"dst", 6<<20, pattern(1<<20, 8))
			cleanup(t, s, p+"dst", p+"src")
		},
		"import export sparse": func(t *testing.T, p string) {
			// object 0: 1 MiB data, 1 MiB zero, 1 MiB data, 1 MiB zero;
			// objects 1 and 2: zero; object 3: 100 bytes at the end
			size := uint64(13<<20 + 123)
			data := make([]byte, size)
			copy(data, pattern(1<<20, 1))
			copy(data[2<<20:], pattern(1<<20, 2))
			copy(data[size-100:], pattern(100, 3))
			var last uint64
			mustOK(t, s.Import(ctx, p+"imp", bytes.NewReader(data), size, func(done, total uint64) { last = done }))
			if last != size {
				t.Errorf("last progress %d, want %d", last, size)
			}
			var out bytes.Buffer
			var exported uint64
			mustOK(t, s.Export(ctx, p+"imp", &out, func(done, total uint64) { exported = done }))
			if !bytes.Equal(out.Bytes(), data) || exported != size {
				t.Fatalf("export differs from import (%d bytes, progress %d)", out.Len(), exported)
			}
			// sparse: the zero MiBs were not written
			js, err := cephtest.RBD(conf, pool, "diff", "--format", "json", p+"imp")
			mustOK(t, err)
			var extents []struct{ Offset, Length uint64 }
			mustOK(t, json.Unmarshal([]byte(js), &extents))
			var allocated uint64
			for _, e := range extents {
				allocated += e.Length
				if e.Offset < 12<<20 && e.Offset+e.Length > 4<<20 {
					t.Errorf("extent %+v lies in the all-zero objects 1-2: zeros were written", e)
				}
			}
			if allocated > 4<<20+1<<20+123 {
				t.Errorf("allocated %d bytes (%+v): the image is not sparse", allocated, extents)
			}
			cleanup(t, s, p+"imp")
		},
		"image io from many goroutines": func(t *testing.T, p string) {
			mustOK(t, s.Create(ctx, p+"io", 16<<20))
			img, err := s.Open(ctx, p+"io")
			mustOK(t, err)
			if img.Size() != 16<<20 || img.Name() != p+"io" {
				t.Errorf("size %d name %q", img.Size(), img.Name())
			}
			var wg sync.WaitGroup
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					want := pattern(64<<10+7, byte(i))
					off := int64(i)<<20 + 13
					if _, err := img.WriteAt(want, off); err != nil {
						t.Error(err)
						return
					}
					got := make([]byte, len(want))
					if _, err := img.ReadAt(got, off); err != nil || !bytes.Equal(got, want) {
						t.Errorf("goroutine %d: read back differs (%v)", i, err)
					}
				}()
			}
			wg.Wait()
			mustOK(t, img.Flush())
			mustOK(t, img.Discard(0, 1<<20))
			got := make([]byte, 1<<20)
			_, err = img.ReadAt(got, 0)
			mustOK(t, err)
			if !bytes.Equal(got, make([]byte, 1<<20)) {
				t.Error("discarded range does not read as zeros")
			}
			tail := make([]byte, 100)
			if n, err := img.ReadAt(tail, 16<<20-40); n != 40 || !errors.Is(err, io.EOF) {
				t.Errorf("read across the end: %d, %v; want 40, io.EOF", n, err)
			}
			if n, err := img.ReadAt(tail, 16<<20); n != 0 || err != io.EOF {
				t.Errorf("read at the end: %d, %v; want 0, io.EOF", n, err)
			}
			mustOK(t, img.Close())
			mustOK(t, img.Close()) // idempotent
			cleanup(t, s, p+"io")
		},
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) { f(t, p+cephtest.Prefix(t)[1:9]+"-") })
	}
}

func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// parentWithSnap creates name (size bytes, patterned with seed) with a
// protected snapshot "s".
func parentWithSnap(t testing.TB, s *Store, name string, size uint64, seed byte) {
	t.Helper()
	ctx := context.Background()
	mustOK(t, s.Create(ctx, name, size))
	fill(t, s, name, size, seed)
	mustOK(t, s.CreateSnapshot(ctx, name, "s"))
	mustOK(t, s.ProtectSnapshot(ctx, name, "s"))
}

// assertData checks that the image holds want at off.
func assertData(t testing.TB, s *Store, name string, off int64, want []byte) {
	t.Helper()
	img, err := s.Open(context.Background(), name)
	mustOK(t, err)
	defer img.Close()
	got := make([]byte, len(want))
	if _, err := img.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("image %s: data at %d differs", name, off)
	}
}
