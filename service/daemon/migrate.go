//go:build ceph_preview

package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/bmi-go/bmi/service/ceph"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/legacy"
	"github.com/bmi-go/bmi/service/store"
)

// MigrateLegacy brings an original BMI site into the state database of
// cfg (`bmid migrate-legacy`): it holds the state lock (bmid must not be
// serving it), opens the state with its secrets key, reads Ceph with
// bmid's own Ceph user and runs legacy.Migrate.
func MigrateLegacy(ctx context.Context, cfg config.Config, o legacy.Options, dryRun bool, log *slog.Logger) (legacy.Report, error) {
	site, err := legacy.ReadSite(ctx, o)
	if err != nil {
		return legacy.Report{}, err
	}
	// The migration makes a new state: its directory too.
	if err := os.MkdirAll(filepath.Dir(cfg.State.Path), 0o750); err != nil {
		return legacy.Report{}, fmt.Errorf("state directory: %w", err)
	}
	lock, err := lockInstance(cfg.State.Path)
	if err != nil {
		return legacy.Report{}, err
	}
	defer lock.release()
	db, err := store.Open(ctx, cfg.State.Path, log.With("component", "store"))
	if err != nil {
		return legacy.Report{}, err
	}
	defer db.Close()
	d := &Daemon{cfg: cfg, db: db, log: log}
	if err := d.loadKey(ctx); err != nil {
		return legacy.Report{}, err
	}
	cs, err := ceph.Dial(ctx, ceph.Config{Conf: cfg.Ceph.Conf, ID: cfg.Ceph.ID, Keyring: cfg.Ceph.Keyring,
		Pool: cfg.Ceph.Pool, OpTimeout: cfg.Ceph.OpTimeout}, log.With("component", "ceph"))
	if err != nil {
		return legacy.Report{}, err
	}
	defer cs.Close()
	return legacy.Migrate(ctx, site, cephStat{cs}, db, legacy.Target{UID: cfg.UID, Snapshot: cfg.Ceph.Snapshot, IQNPrefix: cfg.ISCSI.IQNPrefix}, dryRun)
}

// cephStat adapts the RBD store to what the migration reads.
type cephStat struct{ s *ceph.Store }

func (c cephStat) Stat(ctx context.Context, name string) (legacy.CephImage, error) {
	info, err := c.s.Stat(ctx, name)
	if err != nil {
		return legacy.CephImage{}, err
	}
	out := legacy.CephImage{Size: info.Size, Snaps: map[string]bool{}}
	if info.Parent != nil {
		out.Parent = info.Parent.Image + "@" + info.Parent.Snapshot
	}
	for _, sn := range info.Snapshots {
		out.Snaps[sn.Name] = sn.Protected
	}
	return out, nil
}
