package core

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
)

// CreateSnapshot makes a snapshot image named snapName in project from a
// disk (or from the disk a node boots, when disk names a node): a
// flattened, independent copy that other nodes can boot. The disk's node
// should be powered off (or its file systems quiesced) first.
func (s *Service) CreateSnapshot(ctx context.Context, who Principal, project, disk, snapName string) (Image, error) {
	if err := s.member(ctx, who, project); err != nil {
		return Image{}, err
	}
	if err := ValidateName("snapshot name", snapName); err != nil {
		return Image{}, err
	}
	d, err := s.diskOrNode(ctx, project, disk)
	if err != nil {
		return Image{}, err
	}
	unlock, err := s.lock(describe("snapshot", project, d.Name), imageKey(project, d.Name))
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	data := map[string]string{"project": project, "name": snapName, "kind": string(KindSnapshot),
		"from": d.CephName, "from_snap": "bmi-snap-" + newOpID(), "temp": "1"}
	if d.ParentID != 0 {
		data["parent_id"] = itoa(d.ParentID)
	}
	return s.runCopy(ctx, who, "snapshot", data)
}

// diskOrNode resolves a disk name, or a node name to the disk it boots (the
// original's "snap create PROJECT NODE NAME").
func (s *Service) diskOrNode(ctx context.Context, project, name string) (Image, error) {
	d, err := s.store.Image(ctx, project, name)
	if err == nil && d.Kind == KindDisk {
		return s.readyImage(ctx, project, name, KindDisk)
	}
	if b, berr := s.store.Boot(ctx, name); berr == nil && b.Project == project {
		return s.readyImage(ctx, project, b.Disk, KindDisk)
	}
	if err == nil {
		return Image{}, fault.Errorf(fault.Invalid, "%q in project %q is a %s, not a disk or node", name, project, d.Kind)
	}
	return Image{}, fmt.Errorf("disk or node %q in project %q: %w", name, project, fault.ErrNotFound)
}

// ExportImage copies a BMI image to a new Ceph image outside BMI (admin):
// a flattened copy named dest, which BMI then forgets.
func (s *Service) ExportImage(ctx context.Context, who Principal, project, name, dest string) error {
	if err := s.admin(ctx, who); err != nil {
		return err
	}
	if err := s.validateRBDName("ceph image", dest); err != nil {
		return err
	}
	im, err := s.readyImage(ctx, project, name, KindImage, KindSnapshot)
	if err != nil {
		return err
	}
	if _, err := s.images.Size(ctx, dest); err == nil {
		return fmt.Errorf("ceph image %q: %w", dest, fault.ErrExists)
	} else if !errors.Is(err, fault.ErrNotFound) {
		return err
	}
	unlock, err := s.lock("export", imageKey(project, name), "ceph image \""+dest+"\"")
	if err != nil {
		return err
	}
	defer unlock()
	data := map[string]string{"from": im.CephName, "from_snap": s.cfg.Snapshot, "ceph": s.tmpPrefix() + newOpID(), "dest": dest}
	_, err = s.run(ctx, who, plan{kind: "export", project: project, target: name, data: data})
	return err
}

// exportSteps clone into a BMI-owned temporary name, flatten (commit), and
// rename to the destination, so an interrupted export never leaves a
// half-made image under the operator's name.
func (s *Service) exportSteps() []step {
	return []step{s.cloneStep(), s.flattenStep(), {name: "rename", do: func(ctx context.Context, r *opRun) error {
		err := s.images.Rename(ctx, r.get("ceph"), r.get("dest"))
		if errors.Is(err, fault.ErrNotFound) {
			if _, serr := s.images.Size(ctx, r.get("dest")); serr == nil {
				return nil // renamed by an earlier run
			}
		}
		return err
	}}}
}

// RemoveImage removes an image, snapshot or disk (by name) from project,
// with its Ceph image. An image that disks were cloned from is refused;
// snapshots made from its disks become standalone images, as in the
// original.
func (s *Service) RemoveImage(ctx context.Context, who Principal, project, name string) error {
	if err := s.member(ctx, who, project); err != nil {
		return err
	}
	im, err := s.store.Image(ctx, project, name)
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
	kids, err := s.store.Children(ctx, im.ID)
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
	data := map[string]string{"image_id": itoa(im.ID), "ceph": im.CephName}
	_, err = s.run(ctx, who, plan{kind: "remove", project: project, target: name, data: data})
	return err
}

func (s *Service) removeSteps() []step {
	return []step{
		s.markStateStep(StateDeleting, StateReady),
		{
			name: "unprotect snapshot",
			do: func(ctx context.Context, r *opRun) error {
				err := s.ensureUnprotected(ctx, r.get("ceph"), s.cfg.Snapshot)
				if errors.Is(err, fault.ErrConflict) {
					return fault.Errorf(fault.Conflict, "image has clones in Ceph that BMI does not know: %v", err)
				}
				return err
			},
			undo: func(ctx context.Context, r *opRun) error {
				if _, err := s.images.Size(ctx, r.get("ceph")); errors.Is(err, fault.ErrNotFound) {
					return nil
				}
				return s.imageSnapshotReady(ctx, r.get("ceph"))
			},
		},
		{name: "remove from ceph", do: func(ctx context.Context, r *opRun) error { return s.ensureGone(ctx, r.get("ceph")) }},
		{name: "orphan snapshots", do: func(ctx context.Context, r *opRun) error {
			kids, err := s.store.Children(ctx, atoi(r.get("image_id")))
			if err != nil {
				return err
			}
			for _, k := range kids {
				if err := s.store.MoveImage(ctx, k.ID, k.Project, k.Name, true); err != nil {
					return err
				}
			}
			return nil
		}},
		s.deleteRowStep(),
	}
}

// markStateStep sets the row's state; its undo sets it back.
func (s *Service) markStateStep(to, back State) step {
	return step{
		name: "mark " + string(to),
		do: func(ctx context.Context, r *opRun) error {
			return s.store.SetImageState(ctx, atoi(r.get("image_id")), to, r.id)
		},
		undo: func(ctx context.Context, r *opRun) error {
			err := s.store.SetImageState(ctx, atoi(r.get("image_id")), back, "")
			if errors.Is(err, fault.ErrNotFound) {
				return nil
			}
			return err
		},
	}
}

func (s *Service) deleteRowStep() step {
	return step{name: "delete row", do: func(ctx context.Context, r *opRun) error {
		id := atoi(r.get("image_id"))
		if err := s.store.DeleteTarget(ctx, id); err != nil {
			return err
		}
		return s.store.DeleteImage(ctx, id)
	}}
}
