//go:build ceph_preview

package ceph

import (
	"context"
	"fmt"
	"sort"
	"syscall"

	"github.com/ceph/go-ceph/rbd"
)

func snapAction(verb, image, snap string) string {
	return fmt.Sprintf("%s snapshot %q of image %q", verb, snap, image)
}

// validateSnap checks both names of a snapshot operation.
func validateSnap(image, snap string) error {
	if err := ValidateName("image", image); err != nil {
		return err
	}
	return ValidateName("snapshot", snap)
}

// withImage opens image (read-write) for f and closes it after.
func (s *Store) withImage(image string, f func(*rbd.Image) error) error {
	img, err := rbd.OpenImage(s.ioctx, image, rbd.NoSnapshot)
	if err != nil {
		return err
	}
	ferr := f(img)
	cerr := img.Close()
	if ferr != nil {
		return ferr
	}
	return cerr
}

// snapOp runs f on the named snapshot of an open image, after the checks
// every snapshot call shares.
func (s *Store) snapOp(ctx context.Context, verb, image, snap string, f func(*rbd.Image) error, hints ...hint) error {
	act := snapAction(verb, image, snap)
	if err := validateSnap(image, snap); err != nil {
		return s.fail(err, act)
	}
	done, err := s.begin(ctx)
	if err != nil {
		return s.fail(err, act)
	}
	defer done()
	hints = append([]hint{{syscall.ENOENT, "image or snapshot not found"}}, hints...)
	return s.fail(s.withImage(image, f), act, hints...)
}

// CreateSnapshot takes a snapshot of the image.
func (s *Store) CreateSnapshot(ctx context.Context, image, snap string) error {
	return s.snapOp(ctx, "create", image, snap, func(img *rbd.Image) error {
		_, err := img.CreateSnapshot(snap)
		return err
	}, hint{syscall.EEXIST, "snapshot already exists"}, hint{syscall.ENOENT, "image not found"})
}

// ListSnapshots returns the image's snapshots in creation order.
func (s *Store) ListSnapshots(ctx context.Context, image string) ([]SnapshotInfo, error) {
	act := imageAction("list snapshots of", image)
	if err := ValidateName("image", image); err != nil {
		return nil, s.fail(err, act)
	}
	done, err := s.begin(ctx)
	if err != nil {
		return nil, s.fail(err, act)
	}
	defer done()
	out := []SnapshotInfo{}
	err = func() error {
		img, err := rbd.OpenImageReadOnly(s.ioctx, image, rbd.NoSnapshot)
		if err != nil {
			return err
		}
		defer img.Close()
		snaps, err := img.GetSnapshotNames()
		if err != nil {
			return err
		}
		for _, sn := range snaps {
			if user, err := userSnap(img, sn.Id); err != nil || !user {
				if err != nil {
					return err
				}
				continue
			}
			prot, err := img.GetSnapshot(sn.Name).IsProtected()
			if err != nil {
				return err
			}
			out = append(out, SnapshotInfo{Name: sn.Name, ID: sn.Id, Size: sn.Size, Protected: prot})
		}
		return nil
	}()
	if err != nil {
		return nil, s.fail(err, act)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ProtectSnapshot protects a snapshot so that it can be cloned. Protecting a
// protected snapshot is a no-op.
func (s *Store) ProtectSnapshot(ctx context.Context, image, snap string) error {
	return s.snapOp(ctx, "protect", image, snap, func(img *rbd.Image) error {
		sn := img.GetSnapshot(snap)
		if p, err := sn.IsProtected(); err != nil || p {
			return err
		}
		return sn.Protect()
	})
}

// UnprotectSnapshot unprotects a snapshot; refused (ErrConflict) while it
// has clones. Unprotecting an unprotected snapshot is a no-op.
func (s *Store) UnprotectSnapshot(ctx context.Context, image, snap string) error {
	return s.snapOp(ctx, "unprotect", image, snap, func(img *rbd.Image) error {
		sn := img.GetSnapshot(snap)
		if p, err := sn.IsProtected(); err != nil || !p {
			return err
		}
		return sn.Unprotect()
	}, hint{syscall.EBUSY, "snapshot has clones (flatten or remove them first)"})
}

// RemoveSnapshot removes a snapshot; refused (ErrConflict) while it is
// protected.
//
// librbd first moves a snapshot it removes to the trash namespace (under a
// new name), then deletes it: a removal killed in between leaves it there,
// where a removal by name no longer finds it. So RemoveSnapshot also deletes
// the trashed snapshots that were named snap, and says "not found" only when
// there was neither.
func (s *Store) RemoveSnapshot(ctx context.Context, image, snap string) error {
	return s.snapOp(ctx, "remove", image, snap, func(img *rbd.Image) error {
		err := img.GetSnapshot(snap).Remove()
		if err != nil && errnoOf(err) != syscall.ENOENT {
			return err
		}
		purged, perr := purgeTrashedSnap(img, snap)
		if perr != nil {
			return perr
		}
		if err != nil && purged == 0 {
			return err
		}
		return nil
	}, hint{syscall.EBUSY, "snapshot is protected (unprotect it first)"})
}

// userSnap reports whether the snapshot of that id is in the user
// namespace (the others are librbd's: trash, mirror, group).
func userSnap(img *rbd.Image, id uint64) (bool, error) {
	t, err := img.GetSnapNamespaceType(id)
	if err != nil {
		return false, err
	}
	return t == rbd.SnapNamespaceTypeUser, nil
}

// purgeTrashedSnap deletes the snapshots of the trash namespace that were
// named snap, and returns how many it deleted. One that still has clones
// stays (librbd deletes it with its last clone) and is an error.
func purgeTrashedSnap(img *rbd.Image, snap string) (int, error) {
	snaps, err := img.GetSnapshotNames()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, sn := range snaps {
		t, err := img.GetSnapNamespaceType(sn.Id)
		if err != nil {
			return n, err
		}
		if t != rbd.SnapNamespaceTypeTrash {
			continue
		}
		orig, err := img.GetSnapTrashNamespace(sn.Id)
		if err != nil {
			return n, err
		}
		if orig != snap {
			continue
		}
		if err := img.RemoveSnapByID(sn.Id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
