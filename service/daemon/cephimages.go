//go:build ceph_preview

package daemon

import (
	"context"

	"github.com/bmi-go/bmi/service/ceph"
	"github.com/bmi-go/bmi/service/core"
)

// cephImages presents service/ceph's Store as core.Images: the Store has
// every method core.Images names except these three, which it answers in
// its own terms (Stat, ListSnapshots).
type cephImages struct{ *ceph.Store }

var _ core.Images = cephImages{}

func (c cephImages) Size(ctx context.Context, name string) (uint64, error) {
	info, err := c.Stat(ctx, name)
	return info.Size, err
}

func (c cephImages) Parent(ctx context.Context, name string) (string, string, error) {
	info, err := c.Stat(ctx, name)
	if err != nil || info.Parent == nil {
		return "", "", err
	}
	return info.Parent.Image, info.Parent.Snapshot, nil
}

func (c cephImages) Snapshots(ctx context.Context, name string) ([]core.Snapshot, error) {
	snaps, err := c.ListSnapshots(ctx, name)
	if err != nil {
		return nil, err
	}
	out := make([]core.Snapshot, 0, len(snaps))
	for _, s := range snaps {
		out = append(out, core.Snapshot{Name: s.Name, Protected: s.Protected})
	}
	return out, nil
}
