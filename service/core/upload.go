package core

import (
	"context"
	"fmt"
	"io"
)

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
		return Image{}, fmt.Errorf("upload of %q: size is zero: %w", name, errInvalid)
	}
	unlock, err := s.lock(describe("upload", project, name), imageKey(project, name))
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	if err := s.absent(ctx, project, name); err != nil {
		return Image{}, err
	}
	data := map[string]string{"project": project, "name": name, "kind": string(KindImage), "size": fmt.Sprint(size)}
	if _, err := s.runWithBody(ctx, who, plan{kind: "upload", project: project, target: name, data: data}, body, size); err != nil {
		return Image{}, err
	}
	return s.store.Image(ctx, project, name)
}

func (s *Service) uploadSteps() []step {
	return []step{
		s.insertRowStep(),
		{
			name: "write image",
			do: func(ctx context.Context, r *opRun) error {
				if r.body == nil {
					return fmt.Errorf("upload of %q cannot resume without its stream: %w", r.get("name"), errInvalid)
				}
				return s.images.Import(ctx, r.get("ceph"), r.body, r.size, r.progress)
			},
			undo: func(ctx context.Context, r *opRun) error {
				if r.get("ceph") == "" {
					return nil
				}
				return s.ensureGone(ctx, r.get("ceph"))
			},
		},
		s.snapshotStep(),
		s.markReadyStep(),
	}
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
	return im, s.images.Export(ctx, im.CephName, w, progress)
}
