//go:build ceph_preview

package ceph

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/service/logging"
)

func TestMain(m *testing.M) { os.Exit(cephtest.Main(m)) }

// newStore dials the test cluster and returns the store and the test's
// image-name prefix. The store is closed when the test ends, before the
// leftover check.
func newStore(tb testing.TB) (*Store, string) {
	tb.Helper()
	conf, pool, prefix := cephtest.Pool(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Dial(ctx, Config{Conf: conf, Pool: pool, OpTimeout: 30 * time.Second}, logging.Discard())
	if err != nil {
		tb.Fatalf("dial the test cluster: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s, prefix
}

// poolState describes every image with prefix: name, size, parent,
// snapshots with protection, children, watchers. Tests compare it before
// and after a refused operation to show that nothing changed.
func poolState(tb testing.TB, s *Store, prefix string) string {
	tb.Helper()
	ctx := context.Background()
	names, err := s.List(ctx, prefix)
	if err != nil {
		tb.Fatalf("list %q: %v", prefix, err)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		info, err := s.Stat(ctx, n)
		if err != nil {
			tb.Fatalf("stat %s: %v", n, err)
		}
		fmt.Fprintf(&b, "%s size=%d", strings.TrimPrefix(n, prefix), info.Size)
		if info.Parent != nil {
			fmt.Fprintf(&b, " parent=%s@%s", strings.TrimPrefix(info.Parent.Image, prefix), info.Parent.Snapshot)
		}
		for _, sn := range info.Snapshots {
			fmt.Fprintf(&b, " snap=%s(protected=%v)", sn.Name, sn.Protected)
		}
		for _, c := range info.Children {
			fmt.Fprintf(&b, " child=%s", strings.TrimPrefix(c, prefix))
		}
		fmt.Fprintf(&b, " watchers=%d\n", info.Watchers)
	}
	return b.String()
}

// cleanup removes images in order (clones first), unprotecting and
// removing their snapshots; it fails the test on any error.
func cleanup(tb testing.TB, s *Store, names ...string) {
	tb.Helper()
	ctx := context.Background()
	for _, n := range names {
		snaps, err := s.ListSnapshots(ctx, n)
		if err != nil {
			tb.Errorf("cleanup %s: %v", n, err)
			continue
		}
		for _, sn := range snaps {
			if err := s.UnprotectSnapshot(ctx, n, sn.Name); err != nil {
				tb.Errorf("cleanup: %v", err)
			}
			if err := s.RemoveSnapshot(ctx, n, sn.Name); err != nil {
				tb.Errorf("cleanup: %v", err)
			}
		}
		if err := s.Remove(ctx, n); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	}
}

// fill writes a recognisable pattern (seeded by seed) to size bytes of the
// image, with every other MiB left zero.
func fill(tb testing.TB, s *Store, name string, size uint64, seed byte) {
	tb.Helper()
	img, err := s.Open(context.Background(), name)
	if err != nil {
		tb.Fatal(err)
	}
	defer img.Close()
	buf := pattern(1<<20, seed)
	for off := uint64(0); off+1<<20 <= size; off += 2 << 20 {
		if _, err := img.WriteAt(buf, int64(off)); err != nil {
			tb.Fatal(err)
		}
	}
}

// pattern returns n bytes that depend on seed and are never all zero.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x>>24) | 1
	}
	return b
}

// clusterOf returns the test cluster's conf and pool.
func clusterOf(tb testing.TB) (conf, pool string) {
	tb.Helper()
	return cephtest.Cluster(tb)
}
