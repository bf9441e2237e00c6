//go:build ceph_preview

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/bmi-go/bmi/service/fault"
)

// lazyImage is an exported disk whose RBD image is opened at its first
// I/O, not at export. Opening a clone costs as much as a third of the
// clone itself (librbd reads the child's and the parent's headers and
// registers a watch on each), so an eager open doubled a provision's cost
// over the bare clone; and a gateway that re-exports its disks after a
// restart opened every one of them, idle or not. The size comes from the
// state database (BMI never resizes an exported image), so READ CAPACITY
// and the target's checks need no open.
//
// A failed open is not kept: the I/O that asked for it fails and the next
// one tries again (Ceph came back). Close closes the image if it was
// opened and makes every later I/O fail.
type lazyImage struct {
	name string
	size uint64
	// open opens the image and fences a stale owner of its lock (the
	// exporter's openFenced).
	open func(ctx context.Context) (openImage, error)
	log  *slog.Logger

	img atomic.Pointer[openImage] // set once opened; the I/O fast path

	mu     sync.Mutex // serialises opening and closing
	closed bool
}

// openImage is what lazyImage needs of an open image (*ceph.Image).
type openImage interface {
	ReadAt(p []byte, off int64) (int, error)
	ReadAsync(p []byte, off int64, done func(n int, err error)) error
	WriteAt(p []byte, off int64) (int, error)
	WriteAsync(p []byte, off int64, done func(n int, err error)) error
	Flush() error
	Discard(off, n uint64) error
	Close() error
}

var errUnexported = errors.New("the disk was unexported")

// image returns the open image, opening it on first use.
func (l *lazyImage) image() (openImage, error) {
	if im := l.img.Load(); im != nil {
		return *im, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fault.Errorf(fault.Unavailable, "ceph: image %q: %v", l.name, errUnexported)
	}
	if im := l.img.Load(); im != nil {
		return *im, nil
	}
	im, err := l.open(context.Background())
	if err != nil {
		l.log.Error("cannot open an exported disk's image at its first I/O; the next I/O tries again", "image", l.name, "err", err)
		return nil, err
	}
	l.img.Store(&im)
	return im, nil
}

// Size is the image's size from the state database.
func (l *lazyImage) Size() uint64 { return l.size }

// ReadAt reads through the image, opening it first if needed.
func (l *lazyImage) ReadAt(p []byte, off int64) (int, error) {
	im, err := l.image()
	if err != nil {
		return 0, err
	}
	return im.ReadAt(p, off)
}

// ReadAsync starts a read (the iSCSI target's asynchronous READ path); the
// first one opens the image in the caller, synchronously.
func (l *lazyImage) ReadAsync(p []byte, off int64, done func(n int, err error)) error {
	im, err := l.image()
	if err != nil {
		return err
	}
	return im.ReadAsync(p, off, done)
}

// WriteAt writes through the image, opening it first if needed.
func (l *lazyImage) WriteAt(p []byte, off int64) (int, error) {
	im, err := l.image()
	if err != nil {
		return 0, err
	}
	return im.WriteAt(p, off)
}

// WriteAsync starts a write (the iSCSI target's asynchronous WRITE path);
// the first one opens the image in the caller, synchronously.
func (l *lazyImage) WriteAsync(p []byte, off int64, done func(n int, err error)) error {
	im, err := l.image()
	if err != nil {
		return err
	}
	return im.WriteAsync(p, off, done)
}

// Flush flushes the image; an image never opened has nothing to flush.
func (l *lazyImage) Flush() error {
	if im := l.img.Load(); im != nil {
		return (*im).Flush()
	}
	return nil
}

// Discard releases a range of the image, opening it first if needed.
func (l *lazyImage) Discard(off, n uint64) error {
	im, err := l.image()
	if err != nil {
		return err
	}
	return im.Discard(off, n)
}

// Close closes the image if it was opened; later I/O fails.
func (l *lazyImage) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	im := l.img.Swap(nil)
	if im == nil {
		return nil
	}
	if err := (*im).Close(); err != nil {
		return fmt.Errorf("close image %q: %w", l.name, err)
	}
	return nil
}
