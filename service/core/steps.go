package core

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/opjournal"
)

// The parts of operations' data, and the steps several operations share.
// Each operation's own file declares its data (made of these parts), its
// steps in order and its commit step, beside its entry point.

// newRow is the row an operation creates, and its Ceph image: the "insert
// row" step fills in ImageID and Ceph.
type newRow struct {
	Project  string `json:"project"`
	Name     string `json:"name"`
	Kind     Kind   `json:"kind"`
	ParentID int64  `json:"parent_id,omitempty"`
	ImageID  int64  `json:"image_id,omitempty"`
	Ceph     string `json:"ceph,omitempty"`
	// Size is the image's size when known before it exists: a clone has
	// its source snapshot's size. Mark ready asks Ceph only when it is 0.
	Size uint64 `json:"size,omitempty"`
}

// source is the snapshot a clone or copy is made from.
type source struct {
	From     string `json:"from"`
	FromSnap string `json:"from_snap"`
	// Temp: the operation takes FromSnap itself and removes it after.
	Temp bool `json:"temp,omitempty"`
	// Protect: the operation protects the operator's FromSnap;
	// WasProtected says whether it already was (journaled before the
	// operation starts, so that a rollback restores it).
	Protect      bool  `json:"protect,omitempty"`
	WasProtected *bool `json:"was_protected,omitempty"`
}

// oldRow is the existing row an operation changes or removes.
type oldRow struct {
	ImageID int64  `json:"image_id"`
	Ceph    string `json:"ceph"`
	Project string `json:"project"`
}

// nodeBoot is a node's boot config as an operation records it.
type nodeBoot struct {
	Node string `json:"node"`
	NIC  string `json:"nic"`
	MAC  string `json:"mac"`
	// OwnsDisk: the operation is pro, which makes the disk the node
	// boots: the boot config records it as the node's own (OwnedDiskID)
	// and its NIC as attached.
	OwnsDisk bool `json:"owns_disk,omitempty"`
	// OwnedDiskID is the disk an earlier pro made for the node, kept by
	// set-boot (0: none).
	OwnedDiskID int64 `json:"owned_disk_id,omitempty"`
	// Attached: BMI attached the node's NIC to the provisioning network
	// (an earlier pro or set-boot, or this operation).
	Attached bool `json:"attached,omitempty"`
	// Prev is the config the operation replaces or deletes, put back by a
	// rollback (nil: there was none).
	Prev *BootConfig `json:"prev,omitempty"`
}

// network is the HIL network a provision attaches the node's NIC to.
type network struct {
	Network string `json:"network,omitempty"`
	Channel string `json:"channel,omitempty"`
}

// legacy reads data journaled as a flat object of strings (by a bmid
// before typed data) into D: numbers, flags ("1"/"true") and the previous
// boot config (JSON) get their types, keys D does not have are ignored.
func legacy[D any](flat map[string]string) (D, error) {
	var d D
	typed := map[string]any{}
	for k, v := range flat {
		switch k {
		case "image_id", "parent_id", "size":
			n, _ := strconv.ParseInt(v, 10, 64)
			typed[k] = n
		case "temp", "protect", "owns_disk":
			typed[k] = v == "1" || v == "true"
		case "was_protected":
			if v != "" {
				typed[k] = v == "true"
			}
		case "prev":
			if v != "" {
				typed[k] = json.RawMessage(v)
			}
		default:
			typed[k] = v
		}
	}
	b, err := json.Marshal(typed)
	if err == nil {
		err = json.Unmarshal(b, &d)
	}
	if err != nil {
		return d, fault.Errorf(fault.Internal, "data journaled in version 0: %v", err)
	}
	return d, nil
}

type step[D any] = opjournal.Step[D]

type run[D any] = opjournal.Run[D]

// insertRowStep inserts the operation's new row, pending; its undo deletes
// it (and the target record a disk may have).
func insertRowStep[D any](s *Service, row func(*D) *newRow) step[D] {
	return step[D]{
		Name: "insert row",
		Do: func(ctx context.Context, r *run[D]) error {
			n := row(&r.Data)
			if n.ImageID != 0 {
				return nil
			}
			im, err := s.rows.InsertImage(ctx, Image{Project: n.Project, Name: n.Name, Kind: n.Kind, ParentID: n.ParentID,
				Size: n.Size, State: StatePending, OpID: r.ID}, s.cfg.UID)
			if err != nil {
				return err
			}
			n.ImageID, n.Ceph = im.ID, im.CephName
			return nil
		},
		Undo: func(ctx context.Context, r *run[D]) error {
			n := row(&r.Data)
			id := n.ImageID
			if id == 0 {
				// The row may exist if the process died between insert and journal.
				im, err := s.rows.Image(ctx, n.Project, n.Name)
				if err != nil || im.OpID != r.ID {
					return nil
				}
				id = im.ID
			}
			if err := s.targets.DeleteTarget(ctx, id); err != nil {
				return err
			}
			return s.rows.DeleteImage(ctx, id)
		},
	}
}

// markReadyStep records the new row's size and makes it usable.
func markReadyStep[D any](s *Service, row func(*D) *newRow) step[D] {
	return step[D]{Name: "mark ready", Do: func(ctx context.Context, r *run[D]) error {
		n := row(&r.Data)
		// Opening an image to read its size costs as much as the export's
		// open (the parent is opened too): a row inserted with its size
		// (a clone's) skips it.
		if n.Size == 0 {
			if size, err := s.ceph.Size(ctx, n.Ceph); err == nil {
				if err := s.rows.SetImageSize(ctx, n.ImageID, size); err != nil {
					return err
				}
			}
		}
		return s.rows.SetImageState(ctx, n.ImageID, StateReady, "")
	}}
}

// cloneStep clones the source snapshot to the Ceph image child names; its
// undo removes that image.
func cloneStep[D any](s *Service, src func(*D) *source, child func(*D) string) step[D] {
	return step[D]{
		Name: "clone",
		Do: func(ctx context.Context, r *run[D]) error {
			sn := src(&r.Data)
			return s.ensureClone(ctx, sn.From, sn.FromSnap, child(&r.Data))
		},
		Undo: func(ctx context.Context, r *run[D]) error {
			if c := child(&r.Data); c != "" {
				return s.ensureGone(ctx, c)
			}
			return nil
		},
	}
}

// flattenStep copies into a clone what it still reads from its parent.
func flattenStep[D any](s *Service, image func(*D) string) step[D] {
	return step[D]{Name: "flatten", Do: func(ctx context.Context, r *run[D]) error {
		return s.ensureFlat(ctx, image(&r.Data), r.Progress)
	}}
}

// snapshotStep gives a new image its protected snapshot, for cloning.
func snapshotStep[D any](s *Service, row func(*D) *newRow) step[D] {
	return step[D]{Name: "snapshot and protect", Do: func(ctx context.Context, r *run[D]) error {
		return s.imageSnapshotReady(ctx, row(&r.Data).Ceph)
	}}
}

// markStateStep sets an existing row's state; its undo sets it back.
func markStateStep[D any](s *Service, row func(*D) *oldRow, to, back State) step[D] {
	return step[D]{
		Name: "mark " + string(to),
		Do: func(ctx context.Context, r *run[D]) error {
			return s.rows.SetImageState(ctx, row(&r.Data).ImageID, to, r.ID)
		},
		Undo: func(ctx context.Context, r *run[D]) error {
			err := s.rows.SetImageState(ctx, row(&r.Data).ImageID, back, "")
			if errors.Is(err, fault.ErrNotFound) {
				return nil
			}
			return err
		},
	}
}

// removeImageStep removes an existing row's Ceph image (with its
// snapshots); an image already gone is fine.
func removeImageStep[D any](s *Service, row func(*D) *oldRow) step[D] {
	return step[D]{Name: "remove from ceph", Do: func(ctx context.Context, r *run[D]) error {
		return s.ensureGone(ctx, row(&r.Data).Ceph)
	}}
}

// deleteRowStep deletes an existing row and its target record.
func deleteRowStep[D any](s *Service, row func(*D) *oldRow) step[D] {
	return step[D]{Name: "delete row", Do: func(ctx context.Context, r *run[D]) error {
		id := row(&r.Data).ImageID
		if err := s.targets.DeleteTarget(ctx, id); err != nil {
			return err
		}
		return s.rows.DeleteImage(ctx, id)
	}}
}

// exportStep exports a disk's target; its undo unexports it.
func exportStep[D any](s *Service, row func(*D) *newRow) step[D] {
	return step[D]{
		Name: "export",
		Do: func(ctx context.Context, r *run[D]) error {
			n := row(&r.Data)
			t, err := s.targets.Target(ctx, n.ImageID)
			if err != nil {
				return err
			}
			return s.exporter.Export(ctx, s.exportSpec(t, n.Ceph, n.Size))
		},
		Undo: func(ctx context.Context, r *run[D]) error {
			return s.unexport(ctx, row(&r.Data).ImageID)
		},
	}
}

// unexportStep unexports a disk's target (forward only).
func unexportStep[D any](s *Service, row func(*D) *oldRow) step[D] {
	return step[D]{Name: "unexport", Do: func(ctx context.Context, r *run[D]) error {
		return s.unexport(ctx, row(&r.Data).ImageID)
	}}
}

func (s *Service) unexport(ctx context.Context, diskID int64) error {
	if diskID == 0 {
		return nil
	}
	return s.exporter.Unexport(ctx, IQN(s.cfg.IQNPrefix, s.cfg.UID, diskID))
}

// describeOp is what listings show of an operation.
func describeOp(project, target string, who Principal) opjournal.Meta {
	return opjournal.Meta{Project: project, Target: target, Principal: who.User}
}

// start runs an operation of this service's engine.
func start[D any](ctx context.Context, s *Service, op *opjournal.Op[D], m opjournal.Meta, data D) error {
	_, err := opjournal.Start(ctx, s.engine, op, m, data, nil, 0)
	return err
}

func boolPtr(b bool) *bool { return &b }
