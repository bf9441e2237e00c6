package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// The helpers below make each Ceph action idempotent, so a step can be
// re-run after a crash and an undo can run for a step that never acted.

func (s *Service) ensureSnap(ctx context.Context, image, snap string) error {
	err := s.ceph.CreateSnapshot(ctx, image, snap)
	if errors.Is(err, fault.ErrExists) {
		return nil
	}
	return err
}

func (s *Service) ensureProtected(ctx context.Context, image, snap string) error {
	err := s.ceph.ProtectSnapshot(ctx, image, snap)
	if err == nil || !(errors.Is(err, fault.ErrConflict) || errors.Is(err, fault.ErrExists)) {
		return err
	}
	if p, perr := s.isProtected(ctx, image, snap); perr == nil && p {
		return nil
	}
	return err
}

func (s *Service) isProtected(ctx context.Context, image, snap string) (bool, error) {
	snaps, err := s.ceph.Snapshots(ctx, image)
	if err != nil {
		return false, err
	}
	for _, sn := range snaps {
		if sn.Name == snap {
			return sn.Protected, nil
		}
	}
	return false, fmt.Errorf("snapshot %s@%s: %w", image, snap, fault.ErrNotFound)
}

// ensureUnprotected unprotects image@snap; a missing image or snapshot, or
// one not protected, is fine. A snapshot with clones is a conflict.
func (s *Service) ensureUnprotected(ctx context.Context, image, snap string) error {
	err := s.ceph.UnprotectSnapshot(ctx, image, snap)
	if err == nil || errors.Is(err, fault.ErrNotFound) || errors.Is(err, fault.ErrInvalid) {
		return nil
	}
	return err
}

func (s *Service) ensureSnapGone(ctx context.Context, image, snap string) error {
	if err := s.ensureUnprotected(ctx, image, snap); err != nil {
		return err
	}
	err := s.ceph.RemoveSnapshot(ctx, image, snap)
	if errors.Is(err, fault.ErrNotFound) {
		return nil
	}
	return err
}

// ensureGone removes a BMI-owned image and its snapshots; a missing one is
// fine. Never call it on an image BMI does not own.
//
// An image that cannot be opened is not gone yet: a removal killed half-way
// leaves it in the pool's listing (librbd moved it to the trash, or removed
// its header first), and only another Remove finishes it. So Remove always
// runs, and the image counts as gone only once Ceph no longer lists it.
func (s *Service) ensureGone(ctx context.Context, image string) error {
	snaps, err := s.ceph.Snapshots(ctx, image)
	if err != nil && !errors.Is(err, fault.ErrNotFound) {
		return err
	}
	for _, sn := range snaps {
		if err := s.ensureSnapGone(ctx, image, sn.Name); err != nil {
			return err
		}
	}
	return s.removeWhenFree(ctx, image)
}

// removeWhenFree removes an image without snapshots, waiting (up to
// BusyWait) while Ceph says it is busy: after a crash, the dead process's
// watch on an image it had open (bmid's iSCSI target opens every exported
// disk) lingers until the OSD times it out (osd_client_watch_timeout, 30 s
// by default).
func (s *Service) removeWhenFree(ctx context.Context, image string) error {
	deadline := time.Now().Add(s.cfg.BusyWait)
	delay := 250 * time.Millisecond
	for {
		err := s.ceph.Remove(ctx, image)
		switch {
		case err == nil, errors.Is(err, fault.ErrNotFound):
			return s.confirmGone(ctx, image)
		case !errors.Is(err, fault.ErrConflict) || time.Now().Add(delay).After(deadline):
			return err
		}
		s.log.Warn("image busy, waiting for a stale client's watch to expire", "image", image, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// confirmGone checks that Ceph no longer lists image (its listing includes
// images half removed, in the trash).
func (s *Service) confirmGone(ctx context.Context, image string) error {
	names, err := s.ceph.List(ctx, image)
	if err != nil {
		return fmt.Errorf("confirm the removal of image %q: %w", image, err)
	}
	for _, n := range names {
		if n == image {
			return fault.Errorf(fault.Unavailable, "rbd image %q is still listed after its removal (half removed; the next retry removes it)", image)
		}
	}
	return nil
}

// ensureClone clones parent@snap to child; a child that already is that
// clone (an earlier run of the same step) is fine.
func (s *Service) ensureClone(ctx context.Context, parent, snap, child string) error {
	err := s.ceph.Clone(ctx, parent, snap, child)
	if !errors.Is(err, fault.ErrExists) {
		return err
	}
	pi, ps, perr := s.ceph.Parent(ctx, child)
	if perr == nil && pi == parent && ps == snap {
		return nil
	}
	if perr == nil && pi == "" {
		// Already flattened by a later step of the same operation.
		return nil
	}
	return fault.Errorf(fault.Conflict, "rbd image %q already exists and is not a clone of %s@%s", child, parent, snap)
}

// ensureFlat flattens a clone; an image without a parent is fine.
func (s *Service) ensureFlat(ctx context.Context, name string, progress Progress) error {
	parent, _, err := s.ceph.Parent(ctx, name)
	if err != nil || parent == "" {
		return err
	}
	return s.ceph.Flatten(ctx, name, progress)
}

// imageSnapshotReady makes name@<snapshot> exist and be protected: every
// BMI image keeps one, for cloning.
func (s *Service) imageSnapshotReady(ctx context.Context, name string) error {
	if err := s.ensureSnap(ctx, name, s.cfg.Snapshot); err != nil {
		return err
	}
	return s.ensureProtected(ctx, name, s.cfg.Snapshot)
}
