//go:build ceph_preview

package daemon

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// fakeOpen is an image that counts its opens and closes.
type fakeOpen struct {
	opens, closes atomic.Int32
	fail          atomic.Bool
	gate          chan struct{} // when set, opens wait for it to close
}

type fakeImage struct {
	f      *fakeOpen
	closed atomic.Bool
}

func (f *fakeOpen) open(context.Context) (openImage, error) {
	f.opens.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	if f.fail.Load() {
		return nil, fault.Errorf(fault.Unavailable, "ceph: cluster down")
	}
	return &fakeImage{f: f}, nil
}

func (i *fakeImage) ReadAt(p []byte, _ int64) (int, error) { return len(p), i.err() }
func (i *fakeImage) ReadAsync(p []byte, _ int64, done func(int, error)) error {
	done(len(p), nil)
	return i.err()
}
func (i *fakeImage) WriteAt(p []byte, _ int64) (int, error) { return len(p), i.err() }
func (i *fakeImage) WriteAsync(p []byte, _ int64, done func(int, error)) error {
	done(len(p), nil)
	return i.err()
}
func (i *fakeImage) Flush() error              { return i.err() }
func (i *fakeImage) Discard(_, _ uint64) error { return i.err() }
func (i *fakeImage) Close() error {
	i.f.closes.Add(1)
	i.closed.Store(true)
	return nil
}
func (i *fakeImage) err() error {
	if i.closed.Load() {
		return errors.New("I/O on a closed image")
	}
	return nil
}

func newLazy(f *fakeOpen) *lazyImage {
	return &lazyImage{name: "bmi-u1-7", size: 1 << 30, open: f.open, log: logging.Discard()}
}

// TestLazyImage: the image is opened at the first I/O that needs it, once
// however many I/Os race for it; a failed open is retried by the next I/O;
// Close closes what was opened, and I/O after Close fails without opening.
func TestLazyImage(t *testing.T) {
	buf := make([]byte, 512)
	t.Run("no open until I/O, once under concurrency", func(t *testing.T) {
		f := &fakeOpen{gate: make(chan struct{})}
		l := newLazy(f)
		if l.Size() != 1<<30 || l.Flush() != nil || f.opens.Load() != 0 {
			t.Fatalf("size %d, opens %d before any I/O; want 1 GiB and 0", l.Size(), f.opens.Load())
		}
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				switch i % 5 {
				case 0:
					_, err = l.ReadAt(buf, 0)
				case 1:
					_, err = l.WriteAt(buf, 512)
				case 2:
					err = l.Discard(0, 4096)
				case 3:
					err = l.ReadAsync(buf, 0, func(int, error) {})
				case 4:
					err = l.WriteAsync(buf, 0, func(int, error) {})
				}
				if err != nil {
					t.Error(err)
				}
			}()
		}
		time.Sleep(50 * time.Millisecond) // let them all reach the open
		close(f.gate)
		wg.Wait()
		if n := f.opens.Load(); n != 1 {
			t.Fatalf("32 concurrent first I/Os opened the image %d times, want 1", n)
		}
		if err := l.Close(); err != nil || f.closes.Load() != 1 {
			t.Fatalf("Close = %v, closes %d; want nil, 1", err, f.closes.Load())
		}
	})
	t.Run("failed open is retried", func(t *testing.T) {
		f := &fakeOpen{}
		f.fail.Store(true)
		l := newLazy(f)
		if _, err := l.ReadAt(buf, 0); !errors.Is(err, fault.ErrUnavailable) {
			t.Fatalf("ReadAt while Ceph is down = %v, want unavailable", err)
		}
		f.fail.Store(false)
		if _, err := l.ReadAt(buf, 0); err != nil {
			t.Fatalf("ReadAt once Ceph is back = %v", err)
		}
		if n := f.opens.Load(); n != 2 {
			t.Fatalf("opens = %d, want 2 (the failure is not kept)", n)
		}
		l.Close()
	})
	t.Run("close before any I/O", func(t *testing.T) {
		f := &fakeOpen{}
		l := newLazy(f)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.WriteAt(buf, 0); !errors.Is(err, fault.ErrUnavailable) {
			t.Fatalf("WriteAt after Close = %v, want unavailable", err)
		}
		if f.opens.Load() != 0 || f.closes.Load() != 0 {
			t.Fatalf("opens %d, closes %d after Close with no I/O; want 0, 0", f.opens.Load(), f.closes.Load())
		}
	})
}
