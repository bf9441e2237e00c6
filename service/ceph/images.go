//go:build ceph_preview

package ceph

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"syscall"

	"github.com/ceph/go-ceph/rbd"

	"github.com/bmi-go/bmi/service/fault"
)

// ImageInfo describes an image.
type ImageInfo struct {
	Name       string
	Size       uint64
	ObjectSize uint64
	// Features are librbd's names ("layering", "exclusive-lock", ...).
	Features []string
	// Parent is set for a clone that is not flattened.
	Parent *Parent
	// Snapshots in creation order.
	Snapshots []SnapshotInfo
	// Children are the clones of any snapshot of this image (names in this
	// pool, sorted).
	Children []string
	// Watchers is the number of clients that have the image open.
	Watchers int
}

// Parent names the snapshot a clone was made from.
type Parent struct {
	Pool, Image, Snapshot string
}

// String is "pool/image@snapshot".
func (p Parent) String() string { return p.Pool + "/" + p.Image + "@" + p.Snapshot }

// SnapshotInfo describes one snapshot.
type SnapshotInfo struct {
	Name      string
	ID        uint64
	Size      uint64
	Protected bool
}

func imageAction(verb, name string) string { return fmt.Sprintf("%s image %q", verb, name) }

// Create creates an empty image of size bytes with BMI's features.
func (s *Store) Create(ctx context.Context, name string, size uint64) error {
	act := imageAction("create", name)
	if err := ValidateName("image", name); err != nil {
		return s.fail(err, act)
	}
	if size == 0 {
		return fault.Errorf(fault.Invalid, "ceph: %s: size must be positive", act)
	}
	done, err := s.begin(ctx)
	if err != nil {
		return s.fail(err, act)
	}
	defer done()
	return s.fail(s.create(name, size), act)
}

func (s *Store) create(name string, size uint64) error {
	o, err := newOptions()
	if err != nil {
		return err
	}
	defer o.Destroy()
	return rbd.CreateImage(s.ioctx, name, size, o)
}

// Stat describes an image: size, features, parent, snapshots, children.
func (s *Store) Stat(ctx context.Context, name string) (ImageInfo, error) {
	act := imageAction("stat", name)
	if err := ValidateName("image", name); err != nil {
		return ImageInfo{}, s.fail(err, act)
	}
	done, err := s.begin(ctx)
	if err != nil {
		return ImageInfo{}, s.fail(err, act)
	}
	defer done()
	info, err := s.stat(name)
	return info, s.fail(err, act)
}

func (s *Store) stat(name string) (ImageInfo, error) {
	img, err := rbd.OpenImageReadOnly(s.ioctx, name, rbd.NoSnapshot)
	if err != nil {
		return ImageInfo{}, err
	}
	defer img.Close()
	st, err := img.Stat()
	if err != nil {
		return ImageInfo{}, err
	}
	info := ImageInfo{Name: name, Size: st.Size, ObjectSize: st.Obj_size, Children: []string{}, Snapshots: []SnapshotInfo{}}
	f, err := img.GetFeatures()
	if err != nil {
		return ImageInfo{}, err
	}
	fs := rbd.FeatureSet(f)
	info.Features = fs.Names()
	sort.Strings(info.Features)
	p, err := img.GetParent()
	switch {
	case err == nil:
		info.Parent = &Parent{Pool: p.Image.PoolName, Image: p.Image.ImageName, Snapshot: p.Snap.SnapName}
	case !errors.Is(err, rbd.ErrNotFound):
		return ImageInfo{}, err
	}
	snaps, err := img.GetSnapshotNames()
	if err != nil {
		return ImageInfo{}, err
	}
	for _, sn := range snaps {
		if user, err := userSnap(img, sn.Id); err != nil || !user {
			if err != nil {
				return ImageInfo{}, err
			}
			continue // librbd's own (a trashed snapshot, say)
		}
		prot, err := img.GetSnapshot(sn.Name).IsProtected()
		if err != nil {
			return ImageInfo{}, err
		}
		info.Snapshots = append(info.Snapshots, SnapshotInfo{Name: sn.Name, ID: sn.Id, Size: sn.Size, Protected: prot})
	}
	sort.Slice(info.Snapshots, func(i, j int) bool { return info.Snapshots[i].ID < info.Snapshots[j].ID })
	kids, err := img.ListChildrenAttributes()
	if err != nil && !errors.Is(err, rbd.ErrNotFound) {
		return ImageInfo{}, err
	}
	for _, k := range kids {
		if !k.Trash {
			info.Children = append(info.Children, k.ImageName)
		}
	}
	sort.Strings(info.Children)
	w, err := img.ListWatchers()
	if err != nil {
		return ImageInfo{}, err
	}
	info.Watchers = len(w)
	return info, nil
}

// Exists reports whether the image exists.
func (s *Store) Exists(ctx context.Context, name string) (bool, error) {
	_, err := s.Stat(ctx, name)
	if errors.Is(err, fault.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Remove deletes an image. It is refused (ErrConflict) while the image has
// snapshots or is open elsewhere; nothing is changed then.
func (s *Store) Remove(ctx context.Context, name string) error {
	act := imageAction("remove", name)
	if err := ValidateName("image", name); err != nil {
		return s.fail(err, act)
	}
	done, err := s.begin(ctx)
	if err != nil {
		return s.fail(err, act)
	}
	defer done()
	return s.fail(rbd.RemoveImage(s.ioctx, name), act,
		hint{syscall.ENOTEMPTY, "image has snapshots (remove them first)"},
		hint{syscall.EBUSY, "image is open by a client (watcher) or has clones"})
}

// Rename renames an image within the pool.
func (s *Store) Rename(ctx context.Context, oldName, newName string) error {
	act := fmt.Sprintf("rename image %q to %q", oldName, newName)
	if err := ValidateName("image", oldName); err != nil {
		return s.fail(err, act)
	}
	if err := ValidateName("image", newName); err != nil {
		return s.fail(err, act)
	}
	done, err := s.begin(ctx)
	if err != nil {
		return s.fail(err, act)
	}
	defer done()
	// rbd_rename needs no open image; GetImage only builds the handle
	return s.fail(rbd.GetImage(s.ioctx, oldName).Rename(newName), act,
		hint{syscall.ENOENT, fmt.Sprintf("image %q not found", oldName)},
		hint{syscall.EEXIST, fmt.Sprintf("image %q already exists", newName)})
}

// List returns the names of the pool's images that start with prefix
// (every image for ""), sorted. Ceph has no server-side prefix filter.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	act := fmt.Sprintf("list images with prefix %q in pool %q", prefix, s.Pool())
	if err := validatePrefix(prefix); err != nil {
		return nil, s.fail(err, act)
	}
	done, err := s.begin(ctx)
	if err != nil {
		return nil, s.fail(err, act)
	}
	defer done()
	all, err := rbd.GetImageNames(s.ioctx)
	if err != nil {
		return nil, s.fail(err, act)
	}
	names := []string{}
	for _, n := range all {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}
