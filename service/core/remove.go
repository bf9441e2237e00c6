package core

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/opjournal"
)

// removeData is what removing an image or snapshot journals.
type removeData struct {
	oldRow
}

// removeOp: mark deleting, unprotect its snapshot (the commit: from here
// on the image cannot be cloned), remove it from Ceph, make the snapshots
// made from its disks standalone, delete the row.
func (s *Service) removeOp() *opjournal.Op[removeData] {
	row := func(d *removeData) *oldRow { return &d.oldRow }
	return &opjournal.Op[removeData]{
		Kind: "remove",
		Steps: []step[removeData]{
			markStateStep(s, row, StateDeleting, StateReady),
			{
				Name: "unprotect snapshot",
				Do: func(ctx context.Context, r *run[removeData]) error {
					err := s.ensureUnprotected(ctx, r.Data.Ceph, s.cfg.Snapshot)
					if errors.Is(err, fault.ErrConflict) {
						return fault.Errorf(fault.Conflict, "image has clones in Ceph that BMI does not know: %v", err)
					}
					return err
				},
				Undo: func(ctx context.Context, r *run[removeData]) error {
					if _, err := s.ceph.Size(ctx, r.Data.Ceph); errors.Is(err, fault.ErrNotFound) {
						return nil
					}
					return s.imageSnapshotReady(ctx, r.Data.Ceph)
				},
			},
			removeImageStep(s, row),
			{Name: "orphan snapshots", Do: func(ctx context.Context, r *run[removeData]) error {
				kids, err := s.rows.Children(ctx, r.Data.ImageID)
				if err != nil {
					return err
				}
				for _, k := range kids {
					if err := s.rows.MoveImage(ctx, k.ID, k.Project, k.Name, true); err != nil {
						return err
					}
				}
				return nil
			}},
			deleteRowStep(s, row),
		},
		Commit: "unprotect snapshot",
		Legacy: legacy[removeData],
	}
}

// RemoveImage removes an image, snapshot or disk (by name) from project,
// with its Ceph image. An image that disks were cloned from is refused;
// snapshots made from its disks become standalone images, as in the
// original.
func (s *Service) RemoveImage(ctx context.Context, who Principal, project, name string) error {
	if err := s.member(ctx, who, project); err != nil {
		return err
	}
	im, err := s.rows.Image(ctx, project, name)
	if err != nil {
		return err
	}
	if im.Kind == KindDisk {
		return s.DeleteDisk(ctx, who, project, name)
	}
	unlock, err := s.lock(describe("remove", project, name), imageKey(project, name))
	if err != nil {
		return err
	}
	defer unlock()
	if im, err = s.readyImage(ctx, project, name, KindImage, KindSnapshot); err != nil {
		return err
	}
	kids, err := s.rows.Children(ctx, im.ID)
	if err != nil {
		return err
	}
	var disks []string
	for _, k := range kids {
		if k.Kind == KindDisk {
			disks = append(disks, fmt.Sprintf("%s/%s", k.Project, k.Name))
		}
	}
	if len(disks) > 0 {
		return fault.Errorf(fault.Conflict, "image %q in project %q has clones (disks %s); deprovision them before removing it",
			name, project, strings.Join(disks, ", "))
	}
	d := removeData{oldRow{ImageID: im.ID, Ceph: im.CephName, Project: project}}
	return start(ctx, s, s.ops.remove, describeOp(project, name, who), d)
}
