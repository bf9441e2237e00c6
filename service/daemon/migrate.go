//go:build ceph_preview

package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/bmi-go/bmi/service/ceph"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/legacy"
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
	// The migration makes a new state: on SQLite, its directory too.
	if cfg.State.Engine != "postgres" {
		if err := os.MkdirAll(filepath.Dir(cfg.State.Path), 0o750); err != nil {
			return legacy.Report{}, fmt.Errorf("state directory: %w", err)
		}
	}
	// held like bmid serve holds it: no bmid runs on the state meanwhile
	db, lock, err := openState(ctx, cfg.State, false, log.With("component", "store"))
	if err != nil {
		return legacy.Report{}, err
	}
	defer lock.release()
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
	var nics legacy.NICs
	if cfg.HIL.User != "" {
		pw, err := readPassword(cfg.HIL.PasswordFile)
		if err != nil {
			return legacy.Report{}, err
		}
		nics = hilNICs{c: hil.New(cfg.HIL.URL, &http.Client{Timeout: cfg.HIL.Timeout}, hil.WithLogger(log.With("component", "hil"))),
			cred: hil.Credentials{User: cfg.HIL.User, Password: pw}}
	}
	return legacy.Migrate(ctx, site, cephStat{cs}, db, nics, legacy.Target{UID: cfg.UID, Snapshot: cfg.Ceph.Snapshot, IQNPrefix: cfg.ISCSI.IQNPrefix}, dryRun)
}

// hilNICs finds a node's NIC by MAC in HIL with bmid's own account.
type hilNICs struct {
	c    *hil.Client
	cred hil.Credentials
}

func (h hilNICs) NICOf(ctx context.Context, node, mac string) (string, error) {
	n, err := h.c.ShowNode(ctx, h.cred, node)
	if err != nil {
		return "", err
	}
	for _, nic := range n.NICs {
		if m, err := core.NormalizeMAC(nic.MAC); err == nil && m == mac {
			return nic.Label, nil
		}
	}
	return "", fault.Errorf(fault.NotFound, "node %q has no NIC with MAC %s in HIL", node, mac)
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
