package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/opjournal"
)

// DiskInfo is a disk with its export and the nodes that boot it.
type DiskInfo struct {
	Image
	Target *Target  `json:"target,omitempty"`
	Nodes  []string `json:"nodes,omitempty"`
}

// createDiskData is what creating a disk journals.
type createDiskData struct {
	newRow
	source
}

// createDiskOp: row, clone, target record, export, ready (the commit).
func (s *Service) createDiskOp() *opjournal.Op[createDiskData] {
	row := func(d *createDiskData) *newRow { return &d.newRow }
	return &opjournal.Op[createDiskData]{
		Kind: "create-disk",
		Steps: []step[createDiskData]{
			insertRowStep(s, row),
			cloneStep(s, func(d *createDiskData) *source { return &d.source }, func(d *createDiskData) string { return d.Ceph }),
			targetRecordStep(s, row),
			exportStep(s, row),
			markReadyStep(s, row),
		},
		Commit: "mark ready",
		Legacy: legacy[createDiskData],
	}
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
	d := createDiskData{newRow: s.diskRow(project, disk, src), source: sourceOf(src.CephName, s.cfg.Snapshot)}
	if err := start(ctx, s, s.ops.createDisk, describeOp(project, disk, who), d); err != nil {
		return DiskInfo{}, err
	}
	return s.diskInfo(ctx, project, disk)
}

func (s *Service) diskRow(project, disk string, src Image) newRow {
	return newRow{Project: project, Name: disk, Kind: KindDisk, ParentID: src.ID, Size: src.Size}
}

func randomSecret() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("chap secret: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// targetRecordStep records the new disk's target: IQN from its id, a fresh
// CHAP secret.
func targetRecordStep[D any](s *Service, row func(*D) *newRow) step[D] {
	return step[D]{
		Name: "record target",
		Do: func(ctx context.Context, r *run[D]) error {
			id := row(&r.Data).ImageID
			if _, err := s.targets.Target(ctx, id); err == nil {
				return nil
			}
			secret, err := randomSecret()
			if err != nil {
				return err
			}
			return s.targets.PutTarget(ctx, Target{DiskID: id, IQN: IQN(s.cfg.IQNPrefix, s.cfg.UID, id),
				CHAPUser: fmt.Sprintf("bmi-%s-%d", s.cfg.UID, id), CHAPSecret: secret})
		},
		Undo: func(ctx context.Context, r *run[D]) error {
			if id := row(&r.Data).ImageID; id != 0 {
				return s.targets.DeleteTarget(ctx, id)
			}
			return nil
		},
	}
}

func (s *Service) exportSpec(t Target, ceph string, size uint64) ExportSpec {
	return ExportSpec{IQN: t.IQN, CephName: ceph, CHAPUser: t.CHAPUser, CHAPSecret: logging.Secret(t.CHAPSecret), Initiators: t.Initiators, Size: size}
}

// deleteDiskData is what deleting a disk journals.
type deleteDiskData struct {
	oldRow
}

// deleteDiskOp: mark deleting (the commit), unexport, remove, delete row.
func (s *Service) deleteDiskOp() *opjournal.Op[deleteDiskData] {
	row := func(d *deleteDiskData) *oldRow { return &d.oldRow }
	return &opjournal.Op[deleteDiskData]{
		Kind: "delete-disk",
		Steps: []step[deleteDiskData]{
			markStateStep(s, row, StateDeleting, StateReady),
			unexportStep(s, row),
			removeImageStep(s, row),
			deleteRowStep(s, row),
		},
		Commit: "mark deleting",
		Legacy: legacy[deleteDiskData],
	}
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
	boots, err := s.boots.Boots(ctx, "", d.ID)
	if err != nil {
		return err
	}
	if len(boots) > 0 {
		return fault.Errorf(fault.Conflict, "disk %q in project %q is booted by node %q; clear its boot config first", disk, project, boots[0].Node)
	}
	data := deleteDiskData{oldRow{ImageID: d.ID, Ceph: d.CephName, Project: project}}
	return start(ctx, s, s.ops.deleteDisk, describeOp(project, disk, who), data)
}

// ListDisks lists a project's disks with their exports and nodes (the
// original's showpro / showdisks).
func (s *Service) ListDisks(ctx context.Context, who Principal, project string) ([]DiskInfo, error) {
	if err := s.member(ctx, who, project); err != nil {
		return nil, err
	}
	ims, err := s.rows.Images(ctx, ImageFilter{Project: project, Kind: KindDisk})
	if err != nil {
		return nil, err
	}
	// One query for the targets and one for the boot configs, not two
	// per disk.
	ts, err := s.targets.ProjectTargets(ctx, project)
	if err != nil {
		return nil, err
	}
	target := make(map[int64]*Target, len(ts))
	for i := range ts {
		target[ts[i].DiskID] = &ts[i]
	}
	bs, err := s.boots.DiskBoots(ctx, project)
	if err != nil {
		return nil, err
	}
	nodes := map[int64][]string{}
	for _, b := range bs {
		nodes[b.DiskID] = append(nodes[b.DiskID], b.Node)
	}
	out := make([]DiskInfo, 0, len(ims))
	for _, im := range ims {
		out = append(out, DiskInfo{Image: im, Target: target[im.ID], Nodes: nodes[im.ID]})
	}
	return out, nil
}

func (s *Service) diskInfo(ctx context.Context, project, disk string) (DiskInfo, error) {
	im, err := s.rows.Image(ctx, project, disk)
	if err != nil {
		return DiskInfo{}, err
	}
	return s.diskInfoOf(ctx, im)
}

// diskInfoOf is diskInfo of a disk row already read.
func (s *Service) diskInfoOf(ctx context.Context, im Image) (DiskInfo, error) {
	di := DiskInfo{Image: im}
	if t, err := s.targets.Target(ctx, im.ID); err == nil {
		di.Target = &t
	}
	boots, err := s.boots.Boots(ctx, "", im.ID)
	if err != nil {
		return DiskInfo{}, err
	}
	for _, b := range boots {
		di.Nodes = append(di.Nodes, b.Node)
	}
	return di, nil
}
