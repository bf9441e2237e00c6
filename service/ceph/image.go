//go:build ceph_preview

package ceph

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/ceph/go-ceph/rbd"

	"github.com/bmi-go/bmi/service/fault"
)

// Image is an open image for block I/O (the iSCSI target's backing store).
// Its methods are safe for concurrent use; Close waits for I/O in progress.
type Image struct {
	s    *Store
	name string
	size uint64

	mu  sync.RWMutex // read: I/O; write: close
	img *rbd.Image   // nil once closed
}

// Open opens an image for reading and writing. The image's size is read
// once: BMI never resizes an image that is open.
func (s *Store) Open(ctx context.Context, name string) (*Image, error) {
	act := imageAction("open", name)
	if err := ValidateName("image", name); err != nil {
		return nil, mapError(err, act)
	}
	done, err := s.begin(ctx)
	if err != nil {
		return nil, mapError(err, act)
	}
	defer done()
	img, err := rbd.OpenImage(s.ioctx, name, rbd.NoSnapshot)
	if err != nil {
		return nil, mapError(err, act)
	}
	size, err := img.GetSize()
	if err != nil {
		_ = img.Close()
		return nil, mapError(err, act)
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
func (im *Image) io() (*rbd.Image, func(), error) {
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
		return 0, mapError(err, imageAction("read", im.Name()))
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
	n, err := img.ReadAt(want, off)
	if err != nil && err != io.EOF {
		return n, mapError(err, fmt.Sprintf("read image %q at %d", im.name, off))
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt writes p at off. A write that would cross the end of the image
// is refused (fault.ErrInvalid) and writes nothing.
func (im *Image) WriteAt(p []byte, off int64) (int, error) {
	img, done, err := im.io()
	if err != nil {
		return 0, mapError(err, imageAction("write", im.Name()))
	}
	defer done()
	if off < 0 || uint64(off)+uint64(len(p)) > im.size {
		return 0, fault.Errorf(fault.Invalid, "ceph: write image %q: %d bytes at %d cross the end of the image (%d bytes)", im.name, len(p), off, im.size)
	}
	n, err := img.WriteAt(p, off)
	if err != nil {
		return n, mapError(err, fmt.Sprintf("write image %q at %d", im.name, off))
	}
	return n, nil
}

// Flush waits until every write so far is on the cluster.
func (im *Image) Flush() error {
	img, done, err := im.io()
	if err != nil {
		return mapError(err, imageAction("flush", im.Name()))
	}
	defer done()
	return mapError(img.Flush(), imageAction("flush", im.name))
}

// Discard deallocates length bytes at off; they read as zeros after.
func (im *Image) Discard(off, length uint64) error {
	img, done, err := im.io()
	if err != nil {
		return mapError(err, imageAction("discard", im.Name()))
	}
	defer done()
	if off+length > im.size || off+length < off {
		return fault.Errorf(fault.Invalid, "ceph: discard image %q: %d bytes at %d cross the end of the image (%d bytes)", im.name, length, off, im.size)
	}
	_, err = img.Discard(off, length)
	return mapError(err, fmt.Sprintf("discard image %q at %d", im.name, off))
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
	return mapError(err, imageAction("close", im.name))
}

func (im *Image) close() error {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.img == nil {
		return nil
	}
	err := im.img.Close()
	im.img = nil
	return err
}
