//go:build ceph_preview

package ceph

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/service/fault"
)

// TestReadAsync: asynchronous reads return the image's bytes, see the
// writes made before them through the same Image (one librbd handle, so
// one cache), refuse a range outside the image without calling done, and
// Close waits for the reads in flight.
func TestReadAsync(t *testing.T) {
	t.Parallel()
	s, p := newStore(t)
	ctx := context.Background()
	name := p + cephtest.Prefix(t)[1:9] + "-aio"
	const size = 16 << 20
	mustOK(t, s.Create(ctx, name, size))
	defer cleanup(t, s, name)
	img, err := s.Open(ctx, name)
	mustOK(t, err)
	want := pattern(size, 9)
	_, err = img.WriteAt(want, 0) // not flushed: still in librbd's cache
	mustOK(t, err)

	rng := rand.New(rand.NewPCG(1, 2))
	type res struct {
		off int64
		buf []byte
		n   int
		err error
	}
	results := make(chan res, 200)
	for range 200 {
		n := 1 + rng.IntN(256<<10)
		off := rng.Int64N(size - int64(n))
		buf := make([]byte, n)
		err := img.ReadAsync(buf, off, func(got int, err error) { results <- res{off, buf, got, err} })
		mustOK(t, err)
	}
	for range 200 {
		select {
		case r := <-results:
			if r.err != nil || r.n != len(r.buf) || !bytes.Equal(r.buf, want[r.off:r.off+int64(len(r.buf))]) {
				t.Fatalf("async read of %d bytes at %d: %d, %v, or other bytes than written", len(r.buf), r.off, r.n, r.err)
			}
		case <-time.After(time.Minute):
			t.Fatal("async reads did not complete")
		}
	}

	var called atomic.Int32
	never := func(int, error) { called.Add(1) }
	for _, c := range []struct {
		n   int
		off int64
	}{{0, 0}, {512, -1}, {512, size - 511}, {1, size}} {
		if err := img.ReadAsync(make([]byte, c.n), c.off, never); fault.Of(err) != fault.Invalid {
			t.Errorf("read of %d bytes at %d: %v, want invalid", c.n, c.off, err)
		}
	}

	// Close waits for the reads in flight: each has called done by then.
	closeWaits(t, img, "read", img.ReadAsync, func(int) []byte { return make([]byte, 64<<10) })
	if called.Load() != 0 {
		t.Error("done was called for a read that was refused")
	}
}

// TestReadAsyncBudget: past asyncMaxOps reads in flight on a Store,
// ReadAsync refuses (unavailable: read synchronously) instead of letting
// librbd make its caller wait; the budget comes back as reads complete.
func TestReadAsyncBudget(t *testing.T) {
	t.Parallel()
	s, p := newStore(t)
	ctx := context.Background()
	name := p + cephtest.Prefix(t)[1:9] + "-budget"
	mustOK(t, s.Create(ctx, name, 4<<20))
	defer cleanup(t, s, name)
	img, err := s.Open(ctx, name)
	mustOK(t, err)
	defer img.Close()

	// The first read's done blocks the image's completions: no other read
	// completes, so none gives its budget back, until gate opens. (The
	// first one gave its back before done was called.)
	gate, entered := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	mustOK(t, img.ReadAsync(make([]byte, 512), 0, func(int, error) { close(entered); <-gate; wg.Done() }))
	<-entered
	started, refused := 0, 0
	for range asyncMaxOps + 10 {
		wg.Add(1)
		err := img.ReadAsync(make([]byte, 512), 512, func(int, error) { wg.Done() })
		switch {
		case err == nil:
			started++
		case fault.Of(err) == fault.Unavailable:
			wg.Done()
			refused++
		default:
			t.Fatal(err)
		}
	}
	if started != asyncMaxOps || refused != 10 {
		t.Errorf("%d reads started and %d refused, want %d and 10", started, refused, asyncMaxOps)
	}
	close(gate)
	wg.Wait()
	ch := make(chan error, 1)
	mustOK(t, img.ReadAsync(make([]byte, 512), 0, func(_ int, err error) { ch <- err }))
	mustOK(t, <-ch)
}

// TestWriteAsync: asynchronous writes land where they were asked (read
// back through the same Image and, after a flush, through another one),
// refuse a range outside the image without calling done, and Close waits
// for the writes in flight.
func TestWriteAsync(t *testing.T) {
	t.Parallel()
	s, p := newStore(t)
	ctx := context.Background()
	name := p + cephtest.Prefix(t)[1:9] + "-aiow"
	const size = 8 << 20
	mustOK(t, s.Create(ctx, name, size))
	defer cleanup(t, s, name)
	img, err := s.Open(ctx, name)
	mustOK(t, err)
	want := pattern(size, 5)
	// 4 KiB pieces in a shuffled order, all in flight at once.
	const piece = 4 << 10
	order := rand.New(rand.NewPCG(3, 4)).Perm(size / piece)
	errs := make(chan error, len(order))
	for _, i := range order {
		off := int64(i) * piece
		buf := append([]byte(nil), want[off:off+piece]...)
		for {
			err := img.WriteAsync(buf, off, func(n int, err error) {
				if err == nil && n != piece {
					err = fmt.Errorf("wrote %d of %d bytes", n, piece)
				}
				errs <- err
			})
			if fault.Of(err) == fault.Unavailable { // past the budget: wait for some to complete
				time.Sleep(time.Millisecond)
				continue
			}
			mustOK(t, err)
			break
		}
	}
	for range order {
		select {
		case err := <-errs:
			mustOK(t, err)
		case <-time.After(time.Minute):
			t.Fatal("async writes did not complete")
		}
	}
	got := make([]byte, size)
	_, err = img.ReadAt(got, 0)
	mustOK(t, err)
	if !bytes.Equal(got, want) {
		t.Fatal("the image does not read back what was written asynchronously")
	}
	mustOK(t, img.Flush())

	var called atomic.Int32
	never := func(int, error) { called.Add(1) }
	for _, c := range []struct {
		n   int
		off int64
	}{{0, 0}, {512, -1}, {512, size - 511}, {1, size}} {
		if err := img.WriteAsync(make([]byte, c.n), c.off, never); fault.Of(err) != fault.Invalid {
			t.Errorf("write of %d bytes at %d: %v, want invalid", c.n, c.off, err)
		}
	}
	closeWaits(t, img, "write", img.WriteAsync, func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 64<<10) })
	if called.Load() != 0 {
		t.Error("done was called for a write that was refused")
	}
	// Another handle sees the writes (Close flushed them).
	other, err := s.Open(ctx, name)
	mustOK(t, err)
	defer other.Close()
	_, err = other.ReadAt(got, 0)
	mustOK(t, err)
	for i := range 64 {
		if got[i<<16] != byte(i) || got[i<<16+65535] != byte(i) {
			t.Fatalf("another handle reads %d at %d, want %d", got[i<<16], i<<16, i)
		}
	}
}

// closeWaits starts 64 asynchronous requests of 64 KiB (verb, through
// start, on the buffers buf gives) and closes img: Close must return only
// once every one has called done, without error; a request on the closed
// image is then refused as unavailable.
func closeWaits(t *testing.T, img *Image, verb string, start func([]byte, int64, func(int, error)) error, buf func(i int) []byte) {
	t.Helper()
	var done atomic.Int32
	for i := range 64 {
		mustOK(t, start(buf(i), int64(i)<<16, func(_ int, err error) {
			if err != nil {
				t.Errorf("%s in flight at Close: %v", verb, err)
			}
			done.Add(1)
		}))
	}
	mustOK(t, img.Close())
	if n := done.Load(); n != 64 {
		t.Errorf("Close returned with %d of 64 %ss done", n, verb)
	}
	if err := start(make([]byte, 512), 0, func(int, error) { t.Errorf("done called for a %s refused on a closed image", verb) }); fault.Of(err) != fault.Unavailable {
		t.Errorf("%s on a closed image: %v, want unavailable", verb, err)
	}
}
