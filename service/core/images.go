package core

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
)

// rbdNameRe is what BMI accepts as the name of a Ceph image it did not
// create (import sources, export destinations).
var rbdNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func (s *Service) validateRBDName(what, name string) error {
	if !rbdNameRe.MatchString(name) {
		return fault.Errorf(fault.Invalid, "%s %q: want 1 to 128 letters, digits, '.', '_' or '-'", what, name)
	}
	if strings.HasPrefix(name, CephPrefix(s.cfg.UID)) || strings.HasPrefix(name, s.tmpPrefix()) {
		return fault.Errorf(fault.Invalid, "%s %q: names starting %q belong to BMI", what, name, CephPrefix(s.cfg.UID))
	}
	return nil
}

func (s *Service) tmpPrefix() string { return s.cfg.UID + "tmp-" }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// insertRowStep inserts the operation's new row, pending; its undo deletes
// it (and the target record a disk may have).
func (s *Service) insertRowStep() step {
	return step{
		name: "insert row",
		do: func(ctx context.Context, r *opRun) error {
			if r.get("image_id") != "" {
				return nil
			}
			im, err := s.store.InsertImage(ctx, Image{Project: r.get("project"), Name: r.get("name"),
				Kind: Kind(r.get("kind")), ParentID: atoi(r.get("parent_id")), State: StatePending, OpID: r.id}, s.cfg.UID)
			if err != nil {
				return err
			}
			r.set("image_id", itoa(im.ID))
			r.set("ceph", im.CephName)
			return nil
		},
		undo: func(ctx context.Context, r *opRun) error {
			id := atoi(r.get("image_id"))
			if id == 0 {
				// The row may exist if the process died between insert and journal.
				im, err := s.store.Image(ctx, r.get("project"), r.get("name"))
				if err != nil || im.OpID != r.id {
					return nil
				}
				id = im.ID
			}
			if err := s.store.DeleteTarget(ctx, id); err != nil {
				return err
			}
			return s.store.DeleteImage(ctx, id)
		},
	}
}

// markReadyStep records the new row's size and makes it usable.
func (s *Service) markReadyStep() step {
	return step{
		name: "mark ready",
		do: func(ctx context.Context, r *opRun) error {
			id := atoi(r.get("image_id"))
			if size, err := s.images.Size(ctx, r.get("ceph")); err == nil {
				if err := s.store.SetImageSize(ctx, id, size); err != nil {
					return err
				}
			}
			return s.store.SetImageState(ctx, id, StateReady, "")
		},
	}
}

// cloneStep clones <from>@<from_snap> (data keys) to the new row's image.
func (s *Service) cloneStep() step {
	return step{
		name: "clone",
		do: func(ctx context.Context, r *opRun) error {
			return s.ensureClone(ctx, r.get("from"), r.get("from_snap"), r.get("ceph"))
		},
		undo: func(ctx context.Context, r *opRun) error {
			if r.get("ceph") == "" {
				return nil
			}
			return s.ensureGone(ctx, r.get("ceph"))
		},
	}
}

func (s *Service) flattenStep() step {
	return step{name: "flatten", do: func(ctx context.Context, r *opRun) error {
		return s.ensureFlat(ctx, r.get("ceph"), r.progress)
	}}
}

func (s *Service) snapshotStep() step {
	return step{name: "snapshot and protect", do: func(ctx context.Context, r *opRun) error {
		return s.imageSnapshotReady(ctx, r.get("ceph"))
	}}
}

// tempSnapSteps snapshot and protect <from>@<from_snap> when the operation
// made that snapshot itself (temp = "1"); their undo removes it again.
func (s *Service) tempSnapSteps() []step {
	return []step{
		{
			name: "snapshot source",
			do: func(ctx context.Context, r *opRun) error {
				if r.get("temp") != "1" {
					return nil
				}
				return s.ensureSnap(ctx, r.get("from"), r.get("from_snap"))
			},
			undo: func(ctx context.Context, r *opRun) error {
				if r.get("temp") != "1" {
					return nil
				}
				return s.ensureSnapGone(ctx, r.get("from"), r.get("from_snap"))
			},
		},
		{
			name: "protect source snapshot",
			do: func(ctx context.Context, r *opRun) error {
				if r.get("temp") != "1" && r.get("protect") != "1" {
					return nil
				}
				if r.get("was_protected") == "" {
					p, err := s.isProtected(ctx, r.get("from"), r.get("from_snap"))
					if err != nil {
						return err
					}
					r.set("was_protected", strconv.FormatBool(p))
				}
				return s.ensureProtected(ctx, r.get("from"), r.get("from_snap"))
			},
			undo: func(ctx context.Context, r *opRun) error {
				if r.get("temp") == "1" || r.get("was_protected") != "false" {
					return nil // step "snapshot source" removes a temporary snapshot
				}
				return s.ensureUnprotected(ctx, r.get("from"), r.get("from_snap"))
			},
		},
	}
}

// dropTempSnapSteps remove the operation's temporary source snapshot once
// the copy is complete (forward only).
func (s *Service) dropTempSnapSteps() []step {
	return []step{{name: "remove source snapshot", do: func(ctx context.Context, r *opRun) error {
		if r.get("temp") != "1" {
			return nil
		}
		return s.ensureSnapGone(ctx, r.get("from"), r.get("from_snap"))
	}}}
}

// copySteps: the recipe shared by import, copy and node snapshots: new row,
// (temporary source snapshot,) clone, flatten, own snapshot, ready (commit),
// (drop the temporary snapshot).
func (s *Service) copySteps() []step {
	steps := []step{s.insertRowStep()}
	steps = append(steps, s.tempSnapSteps()...)
	steps = append(steps, s.cloneStep(), s.flattenStep(), s.snapshotStep(), s.markReadyStep())
	return append(steps, s.dropTempSnapSteps()...)
}

const copyCommit = 6 // index of "mark ready" in copySteps

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
	if _, err := s.store.Project(ctx, project); err != nil {
		return Image{}, err
	}
	if _, err := s.images.Size(ctx, source); err != nil {
		return Image{}, fmt.Errorf("ceph image %q: %w", source, err)
	}
	data := map[string]string{"project": project, "name": opt.Name, "kind": string(KindImage), "from": source}
	if opt.Snap != "" {
		if err := ValidateName("snapshot name", opt.Snap); err != nil {
			return Image{}, err
		}
		was, err := s.isProtected(ctx, source, opt.Snap)
		if err != nil {
			return Image{}, err
		}
		data["from_snap"] = opt.Snap
		if opt.Protect {
			// Journaled with the plan, before anything acts: a crash
			// after protecting still knows to unprotect on rollback.
			data["protect"], data["was_protected"] = "1", strconv.FormatBool(was)
		}
	} else {
		data["from_snap"], data["temp"] = "bmi-import-"+newOpID(), "1"
	}
	return s.runCopy(ctx, who, "import", data)
}

// runCopy runs a copy-recipe operation and returns the new row.
func (s *Service) runCopy(ctx context.Context, who Principal, kind string, data map[string]string) (Image, error) {
	project, name := data["project"], data["name"]
	unlock, err := s.lock(describe(kind, project, name), imageKey(project, name))
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	if _, err := s.store.Image(ctx, project, name); err == nil {
		return Image{}, fmt.Errorf("image %q in project %q: %w", name, project, fault.ErrExists)
	} else if !errors.Is(err, fault.ErrNotFound) {
		return Image{}, err
	}
	if _, err := s.run(ctx, who, plan{kind: kind, project: project, target: name, data: data}); err != nil {
		return Image{}, err
	}
	return s.store.Image(ctx, project, name)
}

// readyImage returns a ready row of one of the kinds.
func (s *Service) readyImage(ctx context.Context, project, name string, kinds ...Kind) (Image, error) {
	im, err := s.store.Image(ctx, project, name)
	if err != nil {
		return Image{}, err
	}
	ok := false
	for _, k := range kinds {
		ok = ok || im.Kind == k
	}
	if !ok {
		return Image{}, fault.Errorf(fault.Invalid, "%q in project %q is a %s", name, project, im.Kind)
	}
	if im.State != StateReady {
		return Image{}, fault.Errorf(fault.Conflict, "%s %q in project %q is %s", im.Kind, name, project, im.State)
	}
	return im, nil
}

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
	data := map[string]string{"project": dstProject, "name": newName, "kind": string(KindImage),
		"from": src.CephName, "from_snap": s.cfg.Snapshot}
	if srcProject == dstProject {
		data["kind"] = string(src.Kind)
		if src.ParentID != 0 {
			data["parent_id"] = itoa(src.ParentID)
		}
	}
	return s.runCopy(ctx, who, "copy", data)
}

// MoveImage moves and/or renames an image or snapshot. It changes the
// database only: the Ceph name comes from the row's id.
func (s *Service) MoveImage(ctx context.Context, who Principal, srcProject, name, dstProject, newName string) (Image, error) {
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
	unlock, err := s.lock("move", imageKey(srcProject, name), imageKey(dstProject, newName))
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	im, err := s.readyImage(ctx, srcProject, name, KindImage, KindSnapshot)
	if err != nil {
		return Image{}, err
	}
	if err := s.store.MoveImage(ctx, im.ID, dstProject, newName, srcProject != dstProject); err != nil {
		return Image{}, err
	}
	return s.store.Image(ctx, dstProject, newName)
}
