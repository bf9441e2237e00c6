//go:build ceph_preview

package ceph

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/ceph/go-ceph/rbd"
)

// Clone makes child a copy-on-write clone of parent@snap, which must be
// protected. It costs the same for any parent size (metadata only).
func (s *Store) Clone(ctx context.Context, parent, snap, child string) error {
	act := fmt.Sprintf("clone %q from snapshot %q of image %q", child, snap, parent)
	if err := validateSnap(parent, snap); err != nil {
		return s.fail(err, act)
	}
	if err := ValidateName("image", child); err != nil {
		return s.fail(err, act)
	}
	done, err := s.begin(ctx)
	if err != nil {
		return s.fail(err, act)
	}
	defer done()
	o, err := newOptions()
	if err != nil {
		return s.fail(err, act)
	}
	defer o.Destroy()
	return s.fail(rbd.CloneImage(s.ioctx, parent, snap, s.ioctx, child, o), act,
		hint{syscall.ENOENT, "parent image or snapshot not found"},
		hint{syscall.EEXIST, fmt.Sprintf("image %q already exists", child)},
		hint{syscall.EINVAL, "snapshot is not protected (clone needs a protected snapshot)"})
}

// Flatten copies into a clone every object it still reads from its parent
// and detaches it from the parent. progress, when not nil, is called from
// the calling goroutine's librbd thread with bytes done and total.
//
// Cancelling ctx stops the flatten at the next object (librbd ECANCELED):
// the clone keeps its parent and stays usable, the objects already copied
// stay copied, and a later Flatten resumes. The error then wraps
// context.Canceled (or is fault.ErrUnavailable for a deadline).
func (s *Store) Flatten(ctx context.Context, image string, progress func(done, total uint64)) error {
	act := imageAction("flatten", image)
	if err := ValidateName("image", image); err != nil {
		return s.fail(err, act)
	}
	done, err := s.begin(ctx)
	if err != nil {
		return s.fail(err, act)
	}
	defer done()
	err = s.withImage(image, func(img *rbd.Image) error {
		st, err := img.Stat()
		if err != nil {
			return err
		}
		cb := func(off, total uint64, _ any) int {
			if ctx.Err() != nil {
				return -int(syscall.ECANCELED)
			}
			if progress != nil {
				progress(min(off*st.Obj_size, st.Size), min(total*st.Obj_size, st.Size))
			}
			return 0
		}
		if err := img.FlattenWithProgress(cb, nil); err != nil {
			if errnoOf(err) == syscall.ECANCELED && ctx.Err() != nil {
				return errors.Join(ctx.Err(), err)
			}
			return err
		}
		if progress != nil {
			progress(st.Size, st.Size)
		}
		return nil
	})
	return s.fail(err, act, hint{syscall.EINVAL, "image is not a clone (has no parent)"})
}

// DeepCopy copies src, its data and its snapshots, to a new image dst (the
// "snapshot of a node" operation). A clone's copy is a clone of the same
// parent snapshot, so only the clone's own data is copied. librbd offers no
// progress and no cancellation for it: ctx is checked before the copy
// starts, and a copy that fails halfway is removed.
func (s *Store) DeepCopy(ctx context.Context, src, dst string) error {
	act := fmt.Sprintf("deep-copy image %q to %q", src, dst)
	if err := ValidateName("image", src); err != nil {
		return s.fail(err, act)
	}
	if err := ValidateName("image", dst); err != nil {
		return s.fail(err, act)
	}
	done, err := s.begin(ctx)
	if err != nil {
		return s.fail(err, act)
	}
	defer done()
	o, err := newOptions()
	if err != nil {
		return s.fail(err, act)
	}
	defer o.Destroy()
	img, err := rbd.OpenImageReadOnly(s.ioctx, src, rbd.NoSnapshot)
	if err != nil {
		return s.fail(err, act, hint{syscall.ENOENT, fmt.Sprintf("image %q not found", src)})
	}
	defer img.Close()
	err = img.DeepCopy(s.ioctx, dst, o)
	if err != nil && errnoOf(err) != syscall.EEXIST {
		s.removeHalfDone(dst)
	}
	return s.fail(err, act, hint{syscall.EEXIST, fmt.Sprintf("image %q already exists", dst)})
}

// removeHalfDone removes what a failed copy or import left under name:
// its snapshots (unprotected first) and the image.
func (s *Store) removeHalfDone(name string) {
	err := s.withImage(name, func(img *rbd.Image) error {
		snaps, err := img.GetSnapshotNames()
		if err != nil {
			return err
		}
		for _, sn := range snaps {
			h := img.GetSnapshot(sn.Name)
			if p, _ := h.IsProtected(); p {
				if err := h.Unprotect(); err != nil {
					return err
				}
			}
			if err := h.Remove(); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || errors.Is(err, rbd.ErrNotFound) {
		err = rbd.RemoveImage(s.ioctx, name)
	}
	if err != nil && !errors.Is(err, rbd.ErrNotFound) {
		s.log.Error("could not remove a half-written image; remove it by hand", "image", name, "err", err)
	}
}
