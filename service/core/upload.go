package core

import (
	"context"
	"fmt"
	"io"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/opjournal"
)

// uploadData is what an upload journals (not the stream: an interrupted
// upload is rolled back, never resumed).
type uploadData struct {
	newRow
	Size uint64 `json:"size"`
}

// uploadOp: new row, write the stream to a new image, its protected
// snapshot, ready (the commit).
func (s *Service) uploadOp() *opjournal.Op[uploadData] {
	row := func(d *uploadData) *newRow { return &d.newRow }
	return &opjournal.Op[uploadData]{
		Kind: "upload",
		Steps: []step[uploadData]{
			insertRowStep(s, row),
			{
				Name: "write image",
				Do: func(ctx context.Context, r *run[uploadData]) error {
					if r.Body == nil {
						return fmt.Errorf("upload of %q cannot resume without its stream: %w", r.Data.Name, fault.ErrInvalid)
					}
					return s.ceph.Import(ctx, r.Data.Ceph, r.Body, r.Size, r.Progress)
				},
				Undo: func(ctx context.Context, r *run[uploadData]) error {
					if r.Data.Ceph == "" {
						return nil
					}
					return s.ensureGone(ctx, r.Data.Ceph)
				},
			},
			snapshotStep(s, row),
			markReadyStep(s, row),
		},
		Commit: "mark ready",
		Legacy: legacy[uploadData],
	}
}

// UploadImage streams an image into project as name (sparse-aware, by the
// RBD store): a new BMI image with its own protected snapshot. An upload
// that fails or is interrupted leaves nothing behind.
func (s *Service) UploadImage(ctx context.Context, who Principal, project, name string, body io.Reader, size uint64) (Image, error) {
	if err := s.member(ctx, who, project); err != nil {
		return Image{}, err
	}
	if err := ValidateName("image name", name); err != nil {
		return Image{}, err
	}
	if size == 0 {
		return Image{}, fmt.Errorf("upload of %q: size is zero: %w", name, fault.ErrInvalid)
	}
	unlock, err := s.lock(describe("upload", project, name), imageKey(project, name))
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	if err := s.absent(ctx, project, name); err != nil {
		return Image{}, err
	}
	d := uploadData{newRow: newRow{Project: project, Name: name, Kind: KindImage}, Size: size}
	if _, err := opjournal.Start(ctx, s.engine, s.ops.upload, describeOp(project, name, who), d, body, size); err != nil {
		return Image{}, err
	}
	return s.rows.Image(ctx, project, name)
}

// DownloadImage streams an image or snapshot of project to w.
func (s *Service) DownloadImage(ctx context.Context, who Principal, project, name string, w io.Writer, progress Progress) (Image, error) {
	if err := s.member(ctx, who, project); err != nil {
		return Image{}, err
	}
	im, err := s.readyImage(ctx, project, name, KindImage, KindSnapshot, KindDisk)
	if err != nil {
		return Image{}, err
	}
	return im, s.ceph.Export(ctx, im.CephName, w, progress)
}
