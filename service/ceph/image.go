//go:build ceph_preview

package ceph

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/bmi-go/bmi/service/fault"
)

// Image is an open image for block I/O (the iSCSI target's backing store).
// Its methods are safe for concurrent use; Close waits for I/O in progress.
type Image struct {
	s    *Store
	name string
	size uint64

	mu  sync.RWMutex // read: I/O (held by a ReadAsync until it completes); write: close
	img *rbdHandle   // nil once closed
}

// Open opens an image for reading and writing. The image's size is read
// once: BMI never resizes an image that is open.
func (s *Store) Open(ctx context.Context, name string) (*Image, error) {
	act := imageAction("open", name)
	if err := ValidateName("image", name); err != nil {
		return nil, s.fail(err, act)
	}
	done, err := s.beginIO(ctx)
	if err != nil {
		return nil, s.fail(err, act)
	}
	defer done()
	img, err := openHandle(s.ioctx, name)
	if err != nil {
		return nil, s.fail(err, act)
	}
	size, err := img.size()
	if err != nil {
		_ = img.close()
		return nil, s.fail(err, act)
	}
	im := &Image{s: s, name: name, size: size, img: img}
	s.imagesMu.Lock()
	s.images[im] = struct{}{}
	s.imagesMu.Unlock()
	return im, nil
}

// Name is the image's name.
func (im *Image) Name() string {
	if im == nil {
		return ""
	}
	return im.name
}

// Size is the image's size in bytes (0 for a nil Image).
func (im *Image) Size() uint64 {
	if im == nil {
		return 0
	}
	return im.size
}

// io starts an I/O call: the image must be open. The returned function
// releases it.
func (im *Image) io() (*rbdHandle, func(), error) {
	if im == nil {
		return nil, nil, errClosed
	}
	im.mu.RLock()
	if im.img == nil {
		im.mu.RUnlock()
		return nil, nil, errClosed
	}
	return im.img, im.mu.RUnlock, nil
}

// ReadAt reads len(p) bytes at off (io.ReaderAt: a read that reaches the
// end returns the bytes before it and io.EOF).
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	img, done, err := im.io()
	if err != nil {
		return 0, im.fail(err, imageAction("read", im.Name()))
	}
	defer done()
	if off < 0 {
		return 0, fault.Errorf(fault.Invalid, "ceph: read image %q: negative offset %d", im.name, off)
	}
	if uint64(off) >= im.size {
		return 0, io.EOF
	}
	want := p
	if rest := im.size - uint64(off); uint64(len(p)) > rest {
		want = p[:rest]
	}
	n, err := img.readAt(want, off)
	if err != nil && err != io.EOF {
		return n, im.fail(err, fmt.Sprintf("read image %q at %d", im.name, off))
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// ReadAsync starts reading len(p) bytes at off, all of them inside the
// image, and returns without waiting. done is called exactly once when
// the read has ended, on another goroutine (it may run before ReadAsync
// returns): with len(p) and nil, or with an error classified like
// ReadAt's. done must not block for long: the image's other completions
// wait behind it. p must not be touched until done is called. An error
// returned by ReadAsync itself means nothing started and done is not
// called. Close waits for reads in flight.
func (im *Image) ReadAsync(p []byte, off int64, done func(n int, err error)) error {
	return im.async("read", p, off, done, (*rbdHandle).readAsync)
}

// WriteAsync starts writing p at off, all of it inside the image, and
// returns without waiting; done is called exactly once when librbd has
// taken the write (what WriteAt waits for), like ReadAsync's. p must not
// be touched until then. The same budget as ReadAsync's applies.
func (im *Image) WriteAsync(p []byte, off int64, done func(n int, err error)) error {
	return im.async("write", p, off, done, (*rbdHandle).writeAsync)
}

// async starts one asynchronous request (verb "read" or "write") within
// the Store's budget.
func (im *Image) async(verb string, p []byte, off int64, done func(n int, err error),
	start func(h *rbdHandle, p []byte, off int64, done func(n int, err error)) error) error {
	img, release, err := im.io()
	if err != nil {
		return im.fail(err, imageAction(verb, im.Name()))
	}
	if len(p) == 0 || off < 0 || uint64(off)+uint64(len(p)) > im.size {
		release()
		return fault.Errorf(fault.Invalid, "ceph: %s image %q: %d bytes at %d are not inside the image (%d bytes)", verb, im.name, len(p), off, im.size)
	}
	s := im.s
	if s.asyncOps.Add(1) > asyncMaxOps || s.asyncBytes.Add(int64(len(p))) > asyncMaxBytes {
		s.asyncOps.Add(-1)
		s.asyncBytes.Add(-int64(len(p)))
		release()
		return fault.Errorf(fault.Unavailable, "ceph: %s image %q: %d asynchronous requests in flight, or more than %d MiB: go synchronously", verb, im.name, asyncMaxOps, asyncMaxBytes>>20)
	}
	unbudget := func() {
		s.asyncOps.Add(-1)
		s.asyncBytes.Add(-int64(len(p)))
	}
	err = start(img, p, off, func(n int, err error) {
		unbudget()
		release()
		if err != nil {
			err = im.fail(err, fmt.Sprintf("%s image %q at %d", verb, im.name, off))
		}
		done(n, err)
	})
	if err != nil {
		unbudget()
		release()
		return im.fail(err, fmt.Sprintf("%s image %q at %d", verb, im.name, off))
	}
	return nil
}

// The asynchronous requests a Store keeps in flight at most, across its
// images. With rbd_non_blocking_aio off, librbd hands a request to the
// Objecter in the caller's thread, and the Objecter makes the caller wait
// while its in-flight budget (objecter_inflight_ops 1024,
// objecter_inflight_op_bytes 100 MiB by default) is spent. ReadAsync's
// caller must not wait (the iSCSI read loop calls it), so ReadAsync and
// WriteAsync stay well inside that budget and answers fault.ErrUnavailable past these
// limits: the caller then reads or writes synchronously, from a goroutine
// that may wait.
const (
	asyncMaxOps   = 256
	asyncMaxBytes = 32 << 20
)

// WriteAt writes p at off. A write that would cross the end of the image
// is refused (fault.ErrInvalid) and writes nothing.
func (im *Image) WriteAt(p []byte, off int64) (int, error) {
	img, done, err := im.io()
	if err != nil {
		return 0, im.fail(err, imageAction("write", im.Name()))
	}
	defer done()
	if off < 0 || uint64(off)+uint64(len(p)) > im.size {
		return 0, fault.Errorf(fault.Invalid, "ceph: write image %q: %d bytes at %d cross the end of the image (%d bytes)", im.name, len(p), off, im.size)
	}
	n, err := img.writeAt(p, off)
	if err != nil {
		return n, im.fail(err, fmt.Sprintf("write image %q at %d", im.name, off))
	}
	return n, nil
}

// Flush waits until every write so far is on the cluster.
func (im *Image) Flush() error {
	img, done, err := im.io()
	if err != nil {
		return im.fail(err, imageAction("flush", im.Name()))
	}
	defer done()
	return im.fail(img.flush(), imageAction("flush", im.name))
}

// Discard deallocates length bytes at off. librbd skips the pieces of the
// range smaller than its discard granularity, so they may keep their data
// (WriteZeroes guarantees zeros).
func (im *Image) Discard(off, length uint64) error {
	img, done, err := im.io()
	if err != nil {
		return im.fail(err, imageAction("discard", im.Name()))
	}
	defer done()
	if off+length > im.size || off+length < off {
		return fault.Errorf(fault.Invalid, "ceph: discard image %q: %d bytes at %d cross the end of the image (%d bytes)", im.name, length, off, im.size)
	}
	err = img.discard(off, length)
	return im.fail(err, fmt.Sprintf("discard image %q at %d", im.name, off))
}

// WriteSame writes the pattern block over n bytes at off (SCSI WRITE
// SAME); n must be a multiple of len(block). A range that would cross the
// end of the image is refused (fault.ErrInvalid) and writes nothing.
func (im *Image) WriteSame(block []byte, off, n uint64) error {
	img, done, err := im.io()
	if err != nil {
		return im.fail(err, imageAction("write", im.Name()))
	}
	defer done()
	if len(block) == 0 || n%uint64(len(block)) != 0 || off+n > im.size || off+n < off {
		return fault.Errorf(fault.Invalid, "ceph: write-same image %q: %d bytes of a %d-byte pattern at %d (image of %d bytes)", im.name, n, len(block), off, im.size)
	}
	return im.fail(img.writeSame(block, off, n), fmt.Sprintf("write-same image %q at %d", im.name, off))
}

// WriteZeroes zeroes n bytes at off, deallocating whole objects; the
// range reads as zeros after. A range that would cross the end of the
// image is refused (fault.ErrInvalid) and changes nothing.
func (im *Image) WriteZeroes(off, n uint64) error {
	img, done, err := im.io()
	if err != nil {
		return im.fail(err, imageAction("write zeroes", im.Name()))
	}
	defer done()
	if off+n > im.size || off+n < off {
		return fault.Errorf(fault.Invalid, "ceph: write zeroes image %q: %d bytes at %d cross the end of the image (%d bytes)", im.name, n, off, im.size)
	}
	return im.fail(img.writeZeroes(off, n), fmt.Sprintf("write zeroes image %q at %d", im.name, off))
}

// Close closes the image. Closing twice, or a nil Image, is a no-op.
func (im *Image) Close() error {
	if im == nil {
		return nil
	}
	err := im.close()
	im.s.imagesMu.Lock()
	delete(im.s.images, im)
	im.s.imagesMu.Unlock()
	return im.fail(err, imageAction("close", im.name))
}

func (im *Image) close() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.img == nil {
		return nil
	}
	err := im.img.close()
	im.img = nil
	return err
}
