package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/opjournal"
)

// Import, copy and node snapshot are one recipe: a new row, (a temporary
// snapshot of the source,) a clone of the source snapshot, flattened, with
// its own protected snapshot, then ready (the commit), (then the temporary
// snapshot dropped).

// copyData is what an import, a copy or a snapshot journals.
type copyData struct {
	newRow
	source
}

func (s *Service) copyOp(kind string) *opjournal.Op[copyData] {
	row := func(d *copyData) *newRow { return &d.newRow }
	src := func(d *copyData) *source { return &d.source }
	return &opjournal.Op[copyData]{
		Kind: kind,
		Steps: []step[copyData]{
			insertRowStep(s, row),
			{
				Name: "snapshot source",
				Do: func(ctx context.Context, r *run[copyData]) error {
					if !r.Data.Temp {
						return nil
					}
					return s.ensureSnap(ctx, r.Data.From, r.Data.FromSnap)
				},
				Undo: func(ctx context.Context, r *run[copyData]) error {
					if !r.Data.Temp {
						return nil
					}
					return s.ensureSnapGone(ctx, r.Data.From, r.Data.FromSnap)
				},
			},
			{
				Name: "protect source snapshot",
				Do: func(ctx context.Context, r *run[copyData]) error {
					if !r.Data.Temp && !r.Data.Protect {
						return nil
					}
					if r.Data.WasProtected == nil {
						p, err := s.isProtected(ctx, r.Data.From, r.Data.FromSnap)
						if err != nil {
							return err
						}
						r.Data.WasProtected = boolPtr(p)
					}
					return s.ensureProtected(ctx, r.Data.From, r.Data.FromSnap)
				},
				Undo: func(ctx context.Context, r *run[copyData]) error {
					if r.Data.Temp || r.Data.WasProtected == nil || *r.Data.WasProtected {
						return nil // step "snapshot source" removes a temporary snapshot
					}
					return s.ensureUnprotected(ctx, r.Data.From, r.Data.FromSnap)
				},
			},
			cloneStep(s, src, func(d *copyData) string { return d.Ceph }),
			flattenStep(s, func(d *copyData) string { return d.Ceph }),
			snapshotStep(s, row),
			markReadyStep(s, row),
			{
				Name: "remove source snapshot",
				Do: func(ctx context.Context, r *run[copyData]) error {
					if !r.Data.Temp {
						return nil
					}
					return s.ensureSnapGone(ctx, r.Data.From, r.Data.FromSnap)
				},
			},
		},
		Commit: "mark ready",
		Legacy: legacy[copyData],
	}
}

// ImportOptions are the variants of import.
type ImportOptions struct {
	// Name is the image's name in BMI; default: the Ceph image's name.
	Name string
	// Snap imports from an existing snapshot of the source instead of a
	// temporary one BMI takes and removes.
	Snap string
	// Protect protects Snap first (it must be protected to be cloned).
	Protect bool
}

// ImportImage makes a BMI image in project from a Ceph image of the pool
// (admin): a flattened copy with its own protected snapshot. The source is
// never modified beyond a temporary snapshot (or protecting Snap).
func (s *Service) ImportImage(ctx context.Context, who Principal, project, source string, opt ImportOptions) (Image, error) {
	if err := s.admin(ctx, who); err != nil {
		return Image{}, err
	}
	if opt.Name == "" {
		opt.Name = source
	}
	if err := ValidateName("image name", opt.Name); err != nil {
		return Image{}, err
	}
	if err := s.validateRBDName("ceph image", source); err != nil {
		return Image{}, err
	}
	if _, err := s.projects.Project(ctx, project); err != nil {
		return Image{}, err
	}
	if _, err := s.ceph.Size(ctx, source); err != nil {
		return Image{}, fmt.Errorf("ceph image %q: %w", source, err)
	}
	d := copyData{newRow: newRow{Project: project, Name: opt.Name, Kind: KindImage}, source: sourceOf(source, "")}
	if opt.Snap != "" {
		if err := ValidateName("snapshot name", opt.Snap); err != nil {
			return Image{}, err
		}
		was, err := s.isProtected(ctx, source, opt.Snap)
		if err != nil {
			return Image{}, err
		}
		d.FromSnap = opt.Snap
		if opt.Protect {
			// Journaled with the plan, before anything acts: a crash after
			// protecting still knows to unprotect on rollback.
			d.Protect, d.WasProtected = true, boolPtr(was)
		}
	} else {
		d.FromSnap, d.Temp = "bmi-import-"+opjournal.NewID(), true
	}
	return s.runCopy(ctx, who, s.ops.imp, d)
}

func sourceOf(image, snap string) source { return source{From: image, FromSnap: snap} }

// CopyImage copies an image or snapshot to dstProject as newName (default:
// the same name): a flattened, independent copy. Within a project a
// snapshot stays a snapshot; across projects the copy is a plain image.
func (s *Service) CopyImage(ctx context.Context, who Principal, srcProject, name, dstProject, newName string) (Image, error) {
	if newName == "" {
		newName = name
	}
	if err := s.member(ctx, who, srcProject); err != nil {
		return Image{}, err
	}
	if err := s.member(ctx, who, dstProject); err != nil {
		return Image{}, err
	}
	if err := ValidateName("image name", newName); err != nil {
		return Image{}, err
	}
	src, err := s.readyImage(ctx, srcProject, name, KindImage, KindSnapshot)
	if err != nil {
		return Image{}, err
	}
	d := copyData{newRow: newRow{Project: dstProject, Name: newName, Kind: KindImage}, source: sourceOf(src.CephName, s.cfg.Snapshot)}
	if srcProject == dstProject {
		d.Kind, d.ParentID = src.Kind, src.ParentID
	}
	return s.runCopy(ctx, who, s.ops.copy, d)
}

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
	dk, err := s.diskOrNode(ctx, project, disk)
	if err != nil {
		return Image{}, err
	}
	unlock, err := s.lock(describe("snapshot", project, dk.Name), imageKey(project, dk.Name))
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	d := copyData{newRow: newRow{Project: project, Name: snapName, Kind: KindSnapshot, ParentID: dk.ParentID},
		source: source{From: dk.CephName, FromSnap: "bmi-snap-" + opjournal.NewID(), Temp: true}}
	return s.runCopy(ctx, who, s.ops.snapshot, d)
}

// diskOrNode resolves a disk name, or a node name to the disk it boots (the
// original's "snap create PROJECT NODE NAME").
func (s *Service) diskOrNode(ctx context.Context, project, name string) (Image, error) {
	d, err := s.rows.Image(ctx, project, name)
	if err == nil && d.Kind == KindDisk {
		return s.readyImage(ctx, project, name, KindDisk)
	}
	if b, berr := s.boots.Boot(ctx, name); berr == nil && b.Project == project {
		return s.readyImage(ctx, project, b.Disk, KindDisk)
	}
	if err == nil {
		return Image{}, fault.Errorf(fault.Invalid, "%q in project %q is a %s, not a disk or node", name, project, d.Kind)
	}
	return Image{}, fmt.Errorf("disk or node %q in project %q: %w", name, project, fault.ErrNotFound)
}

// runCopy runs a copy-recipe operation and returns the new row.
func (s *Service) runCopy(ctx context.Context, who Principal, op *opjournal.Op[copyData], d copyData) (Image, error) {
	unlock, err := s.lock(describe(op.Kind, d.Project, d.Name), imageKey(d.Project, d.Name))
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	if _, err := s.rows.Image(ctx, d.Project, d.Name); err == nil {
		return Image{}, fmt.Errorf("image %q in project %q: %w", d.Name, d.Project, fault.ErrExists)
	} else if !errors.Is(err, fault.ErrNotFound) {
		return Image{}, err
	}
	if err := start(ctx, s, op, describeOp(d.Project, d.Name, who), d); err != nil {
		return Image{}, err
	}
	return s.rows.Image(ctx, d.Project, d.Name)
}
