package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/opjournal"
)

// exportData is what exporting an image out of BMI journals: the source
// snapshot, the BMI-owned temporary name it is copied to, and the
// operator's destination name.
type exportData struct {
	source
	Ceph string `json:"ceph"`
	Dest string `json:"dest"`
}

// exportOp: clone into the temporary name, flatten (the commit), rename to
// the destination, so an interrupted export never leaves a half-made image
// under the operator's name.
func (s *Service) exportOp() *opjournal.Op[exportData] {
	tmp := func(d *exportData) string { return d.Ceph }
	return &opjournal.Op[exportData]{
		Kind: "export",
		Steps: []step[exportData]{
			cloneStep(s, func(d *exportData) *source { return &d.source }, tmp),
			flattenStep(s, tmp),
			{Name: "rename", Do: func(ctx context.Context, r *run[exportData]) error {
				err := s.ceph.Rename(ctx, r.Data.Ceph, r.Data.Dest)
				if errors.Is(err, fault.ErrNotFound) {
					if _, serr := s.ceph.Size(ctx, r.Data.Dest); serr == nil {
						return nil // renamed by an earlier run
					}
				}
				return err
			}},
		},
		Commit: "flatten",
		Legacy: legacy[exportData],
	}
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
	if _, err := s.ceph.Size(ctx, dest); err == nil {
		return fmt.Errorf("ceph image %q: %w", dest, fault.ErrExists)
	} else if !errors.Is(err, fault.ErrNotFound) {
		return err
	}
	unlock, err := s.lock("export", imageKey(project, name), "ceph image \""+dest+"\"")
	if err != nil {
		return err
	}
	defer unlock()
	d := exportData{source: sourceOf(im.CephName, s.cfg.Snapshot), Ceph: s.tmpPrefix() + opjournal.NewID(), Dest: dest}
	return start(ctx, s, s.ops.export, describeOp(project, name, who), d)
}
