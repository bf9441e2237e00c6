// Package cephlab runs a throwaway single-node Ceph cluster (1 mon, 1 mgr,
// 1 BlueStore OSD on a sparse file, pool "rbd" of size 1, cephx on) whose
// every file lives under one directory. The lab, `bmi-lab ceph` and the
// tests that need real Ceph use it.
//
// It shells out to the Ceph command-line tools (ceph-authtool, monmaptool,
// ceph-mon, ceph-mgr, ceph-osd, ceph, rbd) and never uses cgo. Several
// clusters can run at the same time on one host: each picks free mon ports
// (or runs in its own network namespace). Daemons daemonize themselves and
// are stopped by their pid files, never by name.
package cephlab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bmi-go/bmi/service/logging"
)

// DefaultOSDSize is the apparent size of the OSD's sparse block file.
const DefaultOSDSize = 20 << 30

// PoolName is the RBD pool every lab cluster has.
const PoolName = "rbd"

// Options says where and how a cluster runs.
type Options struct {
	// Dir holds every file of the cluster; it must be an absolute path.
	// An empty or missing Dir is bootstrapped; a Dir with a cluster in it
	// is restarted with its data.
	Dir string
	// MonIP is the address the mon binds (default 127.0.0.1).
	MonIP string
	// MonPort and MonV1Port are the mon's msgr2 and msgr1 ports. 0 picks
	// a free port on the host (or 3300 / 6789 inside NetNS, whose loopback
	// is private). Ignored on restart: the ports in ceph.conf are kept.
	MonPort, MonV1Port int
	// NetNS, when set, runs every daemon and client command through
	// `ip netns exec NetNS`. The namespace must exist with lo up.
	NetNS string
	// OSDSize is the OSD block file's apparent size (default DefaultOSDSize).
	OSDSize int64
	// Timeout bounds the wait for HEALTH_OK (default 3 minutes).
	Timeout time.Duration
	// Log receives progress messages (default: discarded).
	Log *slog.Logger
}

// Cluster is one lab cluster, running or not.
type Cluster struct {
	opts Options
	log  *slog.Logger
}

// daemons in start order; Stop goes the other way.
var daemons = []struct{ typ, id string }{{"mon", "a"}, {"mgr", "x"}, {"osd", "0"}}

// New returns the cluster in opts.Dir without starting anything.
func New(opts Options) (*Cluster, error) {
	if opts.Dir == "" || !filepath.IsAbs(opts.Dir) {
		return nil, fmt.Errorf("ceph lab directory %q: must be an absolute path", opts.Dir)
	}
	opts.Dir = filepath.Clean(opts.Dir)
	if strings.ContainsAny(opts.Dir, " \t\n$\"'\\") {
		return nil, fmt.Errorf("ceph lab directory %q: must not contain spaces, quotes, '$' or '\\' (it goes into ceph.conf)", opts.Dir)
	}
	if opts.MonIP == "" {
		opts.MonIP = "127.0.0.1"
	}
	if opts.OSDSize == 0 {
		opts.OSDSize = DefaultOSDSize
	}
	if opts.OSDSize < 2<<30 {
		return nil, fmt.Errorf("ceph lab OSD size %d: must be at least 2 GiB", opts.OSDSize)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 3 * time.Minute
	}
	lg := opts.Log
	if lg == nil {
		lg = logging.Discard()
	}
	return &Cluster{opts: opts, log: lg.With("ceph_dir", opts.Dir)}, nil
}

// Start bootstraps or restarts the cluster in opts.Dir and waits until it
// is HEALTH_OK.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := New(opts)
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Dir is the cluster's directory.
func (c *Cluster) Dir() string { return c.opts.Dir }

// ConfPath is the cluster's ceph.conf; it names the admin keyring
// (client.admin), so clients need only this file.
func (c *Cluster) ConfPath() string { return filepath.Join(c.opts.Dir, "ceph.conf") }

// KeyringPath is the admin client's keyring.
func (c *Cluster) KeyringPath() string {
	return filepath.Join(c.opts.Dir, "ceph.client.admin.keyring")
}

// Pool is the RBD pool of the cluster.
func (c *Cluster) Pool() string { return PoolName }

// NetNS is the network namespace the cluster runs in ("" for the host's).
func (c *Cluster) NetNS() string { return c.opts.NetNS }

// bootstrapped reports whether Dir holds a cluster whose bootstrap got as
// far as a mon store and a finished OSD mkfs; anything less is an
// unfinished bootstrap that Start redoes from scratch.
func (c *Cluster) bootstrapped() bool {
	for _, f := range []string{"mon/ceph-a/store.db/CURRENT", "osd/ceph-0/ready"} {
		if _, err := os.Stat(filepath.Join(c.opts.Dir, f)); err != nil {
			return false
		}
	}
	return true
}

// Start bootstraps the cluster when Dir holds none, starts the daemons that
// are not running, and waits for HEALTH_OK. Starting a running cluster only
// checks its health.
func (c *Cluster) Start(ctx context.Context) error {
	t0 := time.Now()
	if !c.bootstrapped() {
		if err := c.bootstrap(ctx); err != nil {
			return err
		}
	} else {
		for _, d := range daemons {
			if _, ok := c.pid(d.typ, d.id); ok {
				continue
			}
			c.log.Info("starting ceph daemon", "daemon", d.typ+"."+d.id)
			if err := c.startDaemon(ctx, d.typ, d.id); err != nil {
				return err
			}
		}
	}
	if err := c.waitHealthy(ctx); err != nil {
		return err
	}
	if err := c.ensurePool(ctx); err != nil {
		return err
	}
	c.log.Info("ceph lab cluster is HEALTH_OK", "elapsed", time.Since(t0).Round(100*time.Millisecond), "conf", c.ConfPath())
	return nil
}

func (c *Cluster) bootstrap(ctx context.Context) error {
	dir := c.opts.Dir
	if err := c.checkEmpty(); err != nil {
		return err
	}
	c.log.Info("bootstrapping ceph lab cluster")
	for _, sub := range []string{"run", "log", "crash", "mon/ceph-a", "mgr/ceph-x", "osd/ceph-0"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("ceph lab %s: %w", dir, err)
		}
	}
	v2, v1 := c.opts.MonPort, c.opts.MonV1Port
	var err error
	for _, p := range []*int{&v2, &v1} {
		if *p != 0 {
			continue
		}
		if c.opts.NetNS != "" {
			continue
		}
		if *p, err = freePort(c.opts.MonIP); err != nil {
			return fmt.Errorf("ceph lab %s: pick a mon port: %w", dir, err)
		}
	}
	if v2 == 0 {
		v2 = 3300
	}
	if v1 == 0 {
		v1 = 6789
	}
	fsid, err := newUUID()
	if err != nil {
		return err
	}
	osdUUID, err := newUUID()
	if err != nil {
		return err
	}
	host := monHost(c.opts.MonIP, v2, v1)
	if err := writeConf(c.ConfPath(), confData{Dir: dir, FSID: fsid, IP: c.opts.MonIP, MonHost: host, OSDSize: c.opts.OSDSize}); err != nil {
		return fmt.Errorf("ceph lab %s: write ceph.conf: %w", dir, err)
	}
	p := func(rel string) string { return filepath.Join(dir, rel) }
	steps := [][]string{
		{"ceph-authtool", "--create-keyring", p("mon.keyring"), "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"},
		{"ceph-authtool", "--create-keyring", c.KeyringPath(), "--gen-key", "-n", "client.admin",
			"--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mds", "allow *", "--cap", "mgr", "allow *"},
		{"ceph-authtool", "--create-keyring", p("mgr/ceph-x/keyring"), "--gen-key", "-n", "mgr.x",
			"--cap", "mon", "allow profile mgr", "--cap", "osd", "allow *", "--cap", "mds", "allow *"},
		{"ceph-authtool", "--create-keyring", p("osd/ceph-0/keyring"), "--gen-key", "-n", "osd.0",
			"--cap", "mon", "allow profile osd", "--cap", "mgr", "allow profile osd", "--cap", "osd", "allow *"},
		{"ceph-authtool", p("mon.keyring"), "--import-keyring", c.KeyringPath()},
		{"ceph-authtool", p("mon.keyring"), "--import-keyring", p("mgr/ceph-x/keyring")},
		{"ceph-authtool", p("mon.keyring"), "--import-keyring", p("osd/ceph-0/keyring")},
		{"monmaptool", "--create", "--fsid", fsid, "--addv", "a", host, p("monmap")},
		{"ceph-mon", "--conf", c.ConfPath(), "--mkfs", "-i", "a", "--monmap", p("monmap"), "--keyring", p("mon.keyring")},
	}
	for _, s := range steps {
		if _, err := c.run(ctx, "", s...); err != nil {
			return err
		}
	}
	if err := c.startDaemon(ctx, "mon", "a"); err != nil {
		return err
	}
	key, err := c.run(ctx, "", "ceph-authtool", p("osd/ceph-0/keyring"), "-n", "osd.0", "-p")
	if err != nil {
		return err
	}
	secret := p("osd/ceph-0/new.json")
	if err := os.WriteFile(secret, fmt.Appendf(nil, `{"cephx_secret":%q}`, strings.TrimSpace(key)), 0o600); err != nil {
		return err
	}
	if _, err := c.ceph(ctx, "osd", "new", osdUUID, "0", "-i", secret); err != nil {
		return c.withLog(err, "mon", "a")
	}
	_ = os.Remove(secret)
	if _, err := c.run(ctx, "osd-mkfs", "ceph-osd", "--conf", c.ConfPath(), "-i", "0", "--mkfs", "--osd-uuid", osdUUID); err != nil {
		return c.withLog(err, "osd", "0")
	}
	if err := c.startDaemon(ctx, "mgr", "x"); err != nil {
		return err
	}
	if err := c.startDaemon(ctx, "osd", "0"); err != nil {
		return err
	}
	return nil
}

// ensurePool creates and initialises the RBD pool when it is missing (a
// fresh cluster, or a bootstrap interrupted after the OSD was made).
func (c *Cluster) ensurePool(ctx context.Context) error {
	out, err := c.ceph(ctx, "osd", "pool", "ls")
	if err != nil {
		return c.withLog(err, "mon", "a")
	}
	for _, p := range strings.Fields(out) {
		if p == PoolName {
			return nil
		}
	}
	c.log.Info("creating the rbd pool", "pool", PoolName)
	for _, args := range [][]string{
		{"osd", "pool", "create", PoolName, "32", "32", "replicated"},
		{"osd", "pool", "set", PoolName, "size", "1", "--yes-i-really-mean-it"},
		{"osd", "pool", "set", PoolName, "min_size", "1"},
	} {
		if _, err := c.ceph(ctx, args...); err != nil {
			return c.withLog(err, "mon", "a")
		}
	}
	if _, err := c.run(ctx, "", "rbd", "--conf", c.ConfPath(), "pool", "init", PoolName); err != nil {
		return c.withLog(err, "osd", "0")
	}
	// new PGs peer: wait until the pool is usable
	return c.waitHealthy(ctx)
}

// checkEmpty refuses to bootstrap into a directory that holds anything but
// the remains of an earlier, failed bootstrap of ours.
func (c *Cluster) checkEmpty() error {
	ents, err := os.ReadDir(c.opts.Dir)
	if errors.Is(err, os.ErrNotExist) || len(ents) == 0 {
		return os.MkdirAll(c.opts.Dir, 0o755)
	}
	if err != nil {
		return fmt.Errorf("ceph lab %s: %w", c.opts.Dir, err)
	}
	b, err := os.ReadFile(c.ConfPath())
	if err != nil || !strings.HasPrefix(string(b), "# written by bmi-lab") {
		return fmt.Errorf("ceph lab %s: directory is not empty and holds no lab cluster; refusing to bootstrap into it", c.opts.Dir)
	}
	// a failed bootstrap: stop what it started and begin again
	c.log.Warn("ceph lab directory holds an unfinished bootstrap; starting over")
	if err := c.Stop(context.Background()); err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(c.opts.Dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// MonHost returns the mon's address list as written in ceph.conf, e.g.
// "[v2:127.0.0.1:40111,v1:127.0.0.1:40112]".
func (c *Cluster) MonHost() (string, error) {
	ip, v2, v1, err := readMonHost(c.ConfPath())
	if err != nil {
		return "", err
	}
	return monHost(ip, v2, v1), nil
}
