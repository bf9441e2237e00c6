//go:build ceph_preview

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/bmi-go/bmi/service/ceph"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/iscsi"
)

// exporter presents the iSCSI target as core.Exporter: it hands the disk's
// RBD image to the target, which closes it at unexport. An image whose
// size the state knows is opened at its first I/O (lazyImage); any other
// at export.
type exporter struct {
	target *iscsi.Target
	images *ceph.Store
	sec    *security // applies the initiator ACLs after each export
	log    *slog.Logger
}

var _ core.Exporter = exporter{}

func (e exporter) Export(ctx context.Context, spec core.ExportSpec) error {
	if e.exported(ctx, spec.IQN) {
		return nil
	}
	var vol iscsi.Volume
	if spec.Size > 0 {
		vol = &lazyImage{name: spec.CephName, size: spec.Size, log: e.log,
			open: func(ctx context.Context) (openImage, error) { return e.openFenced(ctx, spec) }}
	} else {
		im, err := e.openFenced(ctx, spec)
		if err != nil {
			return err
		}
		vol = im
	}
	exp := iscsi.Export{IQN: spec.IQN, Volume: vol, Initiators: spec.Initiators}
	if spec.CHAPSecret.Reveal() != "" {
		exp.CHAP = &iscsi.CHAP{User: spec.CHAPUser, Secret: spec.CHAPSecret.Reveal()}
	}
	// Nobody may log in until the ACL is applied below.
	exp.Initiators = nil
	if err := e.target.Export(ctx, exp); err != nil {
		vol.Close()
		if errors.Is(err, fault.ErrExists) && e.exported(ctx, spec.IQN) {
			return nil
		}
		return err
	}
	if err := e.target.SetInitiators(ctx, spec.IQN, nil); err != nil {
		return err
	}
	e.sec.exported(ctx, spec.IQN)
	return nil
}

// openFenced opens a disk's image and fences a previous owner of its lock.
func (e exporter) openFenced(ctx context.Context, spec core.ExportSpec) (*ceph.Image, error) {
	vol, err := e.images.Open(ctx, spec.CephName)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", spec.IQN, err)
	}
	// A previous bmid that was killed still holds the disk's exclusive lock
	// until the OSDs time its watch out: fence it now (ceph.FenceStaleOwner
	// says why that is safe) so that the node's next write does not wait.
	fenced, err := vol.FenceStaleOwner(ctx)
	if err != nil {
		vol.Close()
		return nil, fmt.Errorf("export %s: %w", spec.IQN, err)
	}
	if len(fenced) > 0 {
		e.log.Warn("fenced the previous owner of a disk's lock (blocklisted)", "iqn", spec.IQN, "image", spec.CephName, "owners", fenced)
	}
	return vol, nil
}

func (e exporter) exported(_ context.Context, iqn string) bool { return e.target.Has(iqn) }

func (e exporter) Unexport(ctx context.Context, iqn string) error {
	err := e.target.Unexport(ctx, iqn)
	if errors.Is(err, fault.ErrNotFound) {
		return nil
	}
	return err
}

func (e exporter) Exported(ctx context.Context) ([]string, error) {
	list, err := e.target.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, t := range list {
		out = append(out, t.IQN)
	}
	return out, nil
}
