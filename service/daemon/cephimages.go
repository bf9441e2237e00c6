//go:build ceph_preview

package daemon

import (
	"context"
	"io"

	"github.com/bmi-go/bmi/service/ceph"
	"github.com/bmi-go/bmi/service/core"
)

// cephImages presents service/ceph's Store as core.Images.
type cephImages struct{ s *ceph.Store }

var _ core.Images = cephImages{}

func (c cephImages) Size(ctx context.Context, name string) (uint64, error) {
	info, err := c.s.Stat(ctx, name)
	return info.Size, err
}

func (c cephImages) Parent(ctx context.Context, name string) (string, string, error) {
	info, err := c.s.Stat(ctx, name)
	if err != nil || info.Parent == nil {
		return "", "", err
	}
	return info.Parent.Image, info.Parent.Snapshot, nil
}

func (c cephImages) Snapshots(ctx context.Context, name string) ([]core.Snapshot, error) {
	snaps, err := c.s.ListSnapshots(ctx, name)
	if err != nil {
		return nil, err
	}
	out := make([]core.Snapshot, 0, len(snaps))
	for _, s := range snaps {
		out = append(out, core.Snapshot{Name: s.Name, Protected: s.Protected})
	}
	return out, nil
}

func (c cephImages) List(ctx context.Context, prefix string) ([]string, error) {
	return c.s.List(ctx, prefix)
}

func (c cephImages) Remove(ctx context.Context, name string) error { return c.s.Remove(ctx, name) }

func (c cephImages) Rename(ctx context.Context, from, to string) error {
	return c.s.Rename(ctx, from, to)
}

func (c cephImages) CreateSnapshot(ctx context.Context, image, snap string) error {
	return c.s.CreateSnapshot(ctx, image, snap)
}

func (c cephImages) ProtectSnapshot(ctx context.Context, image, snap string) error {
	return c.s.ProtectSnapshot(ctx, image, snap)
}

func (c cephImages) UnprotectSnapshot(ctx context.Context, image, snap string) error {
	return c.s.UnprotectSnapshot(ctx, image, snap)
}

func (c cephImages) RemoveSnapshot(ctx context.Context, image, snap string) error {
	return c.s.RemoveSnapshot(ctx, image, snap)
}

func (c cephImages) Clone(ctx context.Context, parent, snap, child string) error {
	return c.s.Clone(ctx, parent, snap, child)
}

func (c cephImages) Flatten(ctx context.Context, name string, progress core.Progress) error {
	return c.s.Flatten(ctx, name, progress)
}

func (c cephImages) Import(ctx context.Context, name string, r io.Reader, size uint64, progress core.Progress) error {
	return c.s.Import(ctx, name, r, size, progress)
}

func (c cephImages) Export(ctx context.Context, name string, w io.Writer, progress core.Progress) error {
	return c.s.Export(ctx, name, w, progress)
}
