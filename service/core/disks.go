package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// DiskInfo is a disk with its export and the nodes that boot it.
type DiskInfo struct {
	Image
	Target *Target  `json:"target,omitempty"`
	Nodes  []string `json:"nodes,omitempty"`
}

// CreateDisk clones image into a new disk of project and exports it over
// iSCSI (the M2 split's "disk create").
func (s *Service) CreateDisk(ctx context.Context, who Principal, project, image, disk string) (DiskInfo, error) {
	if err := s.member(ctx, who, project); err != nil {
		return DiskInfo{}, err
	}
	if err := ValidateName("disk name", disk); err != nil {
		return DiskInfo{}, err
	}
	src, err := s.readyImage(ctx, project, image, KindImage, KindSnapshot)
	if err != nil {
		return DiskInfo{}, err
	}
	unlock, err := s.lock(describe("create disk", project, disk), imageKey(project, disk))
	if err != nil {
		return DiskInfo{}, err
	}
	defer unlock()
	if err := s.absent(ctx, project, disk); err != nil {
		return DiskInfo{}, err
	}
	data := s.diskData(project, disk, src)
	if _, err := s.run(ctx, who, plan{kind: "create-disk", project: project, target: disk, data: data}); err != nil {
		return DiskInfo{}, err
	}
	return s.diskInfo(ctx, project, disk)
}

func (s *Service) absent(ctx context.Context, project, name string) error {
	_, err := s.store.Image(ctx, project, name)
	if err == nil {
		return fmt.Errorf("%q in project %q: %w", name, project, fault.ErrExists)
	}
	if errors.Is(err, fault.ErrNotFound) {
		return nil
	}
	return err
}

func (s *Service) diskData(project, disk string, src Image) map[string]string {
	return map[string]string{"project": project, "name": disk, "kind": string(KindDisk),
		"parent_id": itoa(src.ID), "from": src.CephName, "from_snap": s.cfg.Snapshot}
}

// createDiskSteps: row, clone, target record, export, ready (commit 4).
func (s *Service) createDiskSteps() []step {
	return []step{s.insertRowStep(), s.cloneStep(), s.targetRecordStep(), s.exportStep(), s.markReadyStep()}
}

func randomSecret() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("chap secret: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// targetRecordStep records the disk's target: IQN from its id, a fresh
// CHAP secret.
func (s *Service) targetRecordStep() step {
	return step{
		name: "record target",
		do: func(ctx context.Context, r *opRun) error {
			id := atoi(r.get("image_id"))
			if _, err := s.store.Target(ctx, id); err == nil {
				return nil
			}
			secret, err := randomSecret()
			if err != nil {
				return err
			}
			return s.store.PutTarget(ctx, Target{DiskID: id, IQN: IQN(s.cfg.IQNPrefix, s.cfg.UID, id),
				CHAPUser: fmt.Sprintf("bmi-%s-%d", s.cfg.UID, id), CHAPSecret: secret})
		},
		undo: func(ctx context.Context, r *opRun) error {
			if id := atoi(r.get("image_id")); id != 0 {
				return s.store.DeleteTarget(ctx, id)
			}
			return nil
		},
	}
}

func (s *Service) exportStep() step {
	return step{
		name: "export",
		do: func(ctx context.Context, r *opRun) error {
			t, err := s.store.Target(ctx, atoi(r.get("image_id")))
			if err != nil {
				return err
			}
			return s.exporter.Export(ctx, s.exportSpec(t, r.get("ceph")))
		},
		undo: func(ctx context.Context, r *opRun) error { return s.unexport(ctx, r) },
	}
}

func (s *Service) unexport(ctx context.Context, r *opRun) error {
	id := atoi(r.get("image_id"))
	if id == 0 {
		return nil
	}
	return s.exporter.Unexport(ctx, IQN(s.cfg.IQNPrefix, s.cfg.UID, id))
}

func (s *Service) exportSpec(t Target, ceph string) ExportSpec {
	return ExportSpec{IQN: t.IQN, CephName: ceph, CHAPUser: t.CHAPUser, CHAPSecret: logging.Secret(t.CHAPSecret), Initiators: t.Initiators}
}

// DeleteDisk unexports and removes a disk. A disk some node boots is
// refused: clear the node's boot config (or deprovision) first.
func (s *Service) DeleteDisk(ctx context.Context, who Principal, project, disk string) error {
	if err := s.member(ctx, who, project); err != nil {
		return err
	}
	unlock, err := s.lock(describe("delete disk", project, disk), imageKey(project, disk))
	if err != nil {
		return err
	}
	defer unlock()
	d, err := s.readyImage(ctx, project, disk, KindDisk)
	if err != nil {
		return err
	}
	boots, err := s.store.Boots(ctx, "", d.ID)
	if err != nil {
		return err
	}
	if len(boots) > 0 {
		return fault.Errorf(fault.Conflict, "disk %q in project %q is booted by node %q; clear its boot config first", disk, project, boots[0].Node)
	}
	data := map[string]string{"image_id": itoa(d.ID), "ceph": d.CephName, "project": project}
	_, err = s.run(ctx, who, plan{kind: "delete-disk", project: project, target: disk, data: data})
	return err
}

// deleteDiskSteps: mark deleting (commit), unexport, remove, delete row.
func (s *Service) deleteDiskSteps() []step {
	return []step{
		s.markStateStep(StateDeleting, StateReady),
		{name: "unexport", do: func(ctx context.Context, r *opRun) error { return s.unexport(ctx, r) }},
		{name: "remove from ceph", do: func(ctx context.Context, r *opRun) error { return s.ensureGone(ctx, r.get("ceph")) }},
		s.deleteRowStep(),
	}
}

// ListDisks lists a project's disks with their exports and nodes (the
// original's showpro / showdisks).
func (s *Service) ListDisks(ctx context.Context, who Principal, project string) ([]DiskInfo, error) {
	if err := s.member(ctx, who, project); err != nil {
		return nil, err
	}
	ims, err := s.store.Images(ctx, ImageFilter{Project: project, Kind: KindDisk})
	if err != nil {
		return nil, err
	}
	out := make([]DiskInfo, 0, len(ims))
	for _, im := range ims {
		di, err := s.diskInfo(ctx, project, im.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, di)
	}
	return out, nil
}

func (s *Service) diskInfo(ctx context.Context, project, disk string) (DiskInfo, error) {
	im, err := s.store.Image(ctx, project, disk)
	if err != nil {
		return DiskInfo{}, err
	}
	di := DiskInfo{Image: im}
	if t, err := s.store.Target(ctx, im.ID); err == nil {
		di.Target = &t
	}
	boots, err := s.store.Boots(ctx, "", im.ID)
	if err != nil {
		return DiskInfo{}, err
	}
	for _, b := range boots {
		di.Nodes = append(di.Nodes, b.Node)
	}
	return di, nil
}
