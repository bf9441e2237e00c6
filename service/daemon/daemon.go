//go:build ceph_preview

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bmi-go/bmi/service/apiserver"
	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/bootfiles"
	"github.com/bmi-go/bmi/service/ceph"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/ipxe"
	"github.com/bmi-go/bmi/service/iscsi"
	"github.com/bmi-go/bmi/service/store"
	"github.com/bmi-go/bmi/service/tftpd"
)

// Daemon is one running bmid.
type Daemon struct {
	cfg      config.Config
	log      *slog.Logger
	db       *store.SQLite
	ceph     *ceph.Store
	target   *iscsi.Target
	svc      *core.Service
	api      *apiserver.Server
	dhcp     *dhcpd.Server
	tftp     *tftpd.Server
	timeline *boot.Timeline
	hilURL   string
}

// New builds every component from cfg. Nothing serves until Run.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Daemon, err error) {
	d := &Daemon{cfg: cfg, log: log, timeline: boot.NewTimeline(), hilURL: cfg.HIL.URL}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	portal := cfg.ISCSI.Portal
	if portal == "" {
		portal = cfg.ISCSI.Listen[0]
	}
	host, port, err := splitPortal(portal)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("iscsi.portal: required when iscsi.listen is a wildcard address (%s): nodes need an address to log in to", portal)
	}
	if d.db, err = store.Open(ctx, cfg.State.Path, log.With("component", "store")); err != nil {
		return nil, err
	}
	if d.ceph, err = ceph.Dial(ctx, ceph.Config{Conf: cfg.Ceph.Conf, ID: cfg.Ceph.ID, Keyring: cfg.Ceph.Keyring,
		Pool: cfg.Ceph.Pool, OpTimeout: cfg.Ceph.OpTimeout}, log.With("component", "ceph")); err != nil {
		return nil, err
	}
	if !cfg.ISCSI.CHAP {
		log.Warn("iSCSI CHAP is OFF: any host on the provisioning network can log in to any disk; use this for tests only")
	}
	if d.target, err = iscsi.New(iscsi.Config{Listen: cfg.ISCSI.Listen, Portal: cfg.ISCSI.Portal, RequireCHAP: cfg.ISCSI.CHAP},
		log.With("component", "iscsi")); err != nil {
		return nil, err
	}
	hc := hil.New(cfg.HIL.URL, &http.Client{Timeout: cfg.HIL.Timeout},
		hil.WithActionTimeout(cfg.HIL.NetworkTimeout), hil.WithLogger(log.With("component", "hil")))
	auth := newHILAuth(hc, cfg.API.AuthCacheTTL)
	deps := core.Deps{Projects: d.db, Rows: d.db, Targets: d.db, Boots: d.db, Leases: d.db, Journal: d.db, Images: cephImages{d.ceph}, Exporter: exporter{target: d.target, images: d.ceph},
		Nodes: auth, Auth: auth, Log: log.With("component", "core")}
	if cfg.HIL.User != "" {
		pw, err := readPassword(cfg.HIL.PasswordFile)
		if err != nil {
			return nil, err
		}
		deps.Networks = hilNetworks{c: hc, cred: hil.Credentials{User: cfg.HIL.User, Password: pw}}
	}
	if cfg.Boot.Files.Enabled {
		deps.Files = files{w: &bootfiles.Writer{PXELinuxDir: cfg.Boot.Files.PXELinuxDir, IPXEDir: cfg.Boot.Files.IPXEDir,
			Interface: cfg.Boot.Files.IPXEInterface, Log: log.With("component", "bootfiles")}, portal: host}
	}
	if d.svc, err = core.New(core.Config{UID: cfg.UID, Snapshot: cfg.Ceph.Snapshot, IQNPrefix: cfg.ISCSI.IQNPrefix,
		AdminProject: cfg.AdminProject, BusyWait: cfg.Ceph.BusyWait,
		ProvisioningNetwork: cfg.HIL.ProvisioningNetwork, Channel: cfg.HIL.Channel}, deps); err != nil {
		return nil, err
	}
	specs := bootSpecs{svc: d.svc, store: d.db, portal: host, port: port}
	if err := d.buildBoot(specs); err != nil {
		return nil, err
	}
	if err := d.buildAPI(specs); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Daemon) buildAPI(specs bootSpecs) error {
	var err error
	d.api, err = apiserver.New(apiserver.Config{Ops: d.svc, Log: d.log.With("component", "api"), Ready: d.ready,
		Listen: d.cfg.API.Listen, TLSCert: d.cfg.API.TLSCert, TLSKey: d.cfg.API.TLSKey, MaxBodyBytes: d.cfg.API.MaxBodyBytes})
	if err != nil {
		return err
	}
	r, err := ipxe.NewRenderer(ipxe.OptionsFromConfig(d.cfg.Boot.IPXE))
	if err != nil {
		return err
	}
	h := &ipxe.Handler{Specs: specs, Nodes: specs, Renderer: r, Log: d.log.With("component", "ipxe"),
		Recorder: d.timeline, Faults: boot.FaultsFromConfig(d.cfg.Boot.Faults.HTTP), RequireLease: d.cfg.Boot.IPXE.RequireLease}
	if d.dhcp != nil {
		h.Clients = d.dhcp
	}
	if h.RequireLease && h.Clients == nil {
		return fmt.Errorf("boot.ipxe.require_lease needs bmid's DHCP server (boot.interfaces)")
	}
	if d.cfg.Boot.TFTP.Root != "" {
		if st, err := os.Stat(d.cfg.Boot.TFTP.Root); err == nil && st.IsDir() {
			h.Files = os.DirFS(d.cfg.Boot.TFTP.Root)
		}
	}
	return d.api.Mount("/boot/", h)
}

func (d *Daemon) buildBoot(specs bootSpecs) error {
	b := d.cfg.Boot
	if len(b.Interfaces) > 0 {
		var err error
		d.dhcp, err = dhcpd.NewFromConfig(b, specs, leases{s: d.db, now: time.Now}, d.log.With("component", "dhcp"), d.timeline)
		if err != nil {
			return err
		}
		if err := d.dhcp.Check(); err != nil {
			return err
		}
	}
	var clients tftpd.Clients
	if d.dhcp != nil {
		clients = d.dhcp
	}
	d.tftp = tftpd.NewFromConfig(b, d.log.With("component", "tftp"), clients, d.timeline)
	return nil
}

// ready is /readyz: the database, Ceph and HIL answer.
func (d *Daemon) ready(ctx context.Context) error {
	if err := d.db.Ping(ctx); err != nil {
		return err
	}
	if _, err := d.ceph.List(ctx, core.CephPrefix(d.cfg.UID)); err != nil {
		return fmt.Errorf("ceph: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.hilURL+"/v0/nodes/free", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("hil: %w", err)
	}
	resp.Body.Close()
	return nil
}

// Service returns the core operations (for tests and reconcile).
func (d *Daemon) Service() *core.Service { return d.svc }

// Run recovers unfinished operations, re-exports every target and serves
// until ctx ends; then everything shuts down and Run returns nil, or the
// first server's error.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.close()
	rep, err := d.svc.Start(ctx)
	if err != nil {
		return fmt.Errorf("start-up reconcile: %w", err)
	}
	d.log.Info("start-up reconcile done", "recovered_operations", rep.Recovered, "reexported", len(rep.Reexported),
		"orphan_images", len(rep.OrphanImages), "problems", len(rep.Errors))
	for _, p := range rep.Errors {
		d.log.Warn("start-up reconcile", "problem", p)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.api.Serve(gctx) })
	g.Go(func() error { return d.target.Serve(gctx) })
	if d.dhcp != nil {
		g.Go(func() error { return d.dhcp.Serve(gctx) })
	}
	if d.tftp != nil {
		g.Go(func() error { return d.tftp.Serve(gctx) })
	}
	g.Go(func() error { d.retryLoop(gctx); return nil })
	d.log.Info("bmid serving", "api", d.cfg.API.Listen, "iscsi", d.cfg.ISCSI.Listen, "dhcp", d.cfg.Boot.Interfaces, "tftp", d.cfg.Boot.TFTP.Listen)
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// retryInterval is how often operations that failed after their commit
// step (or whose rollback did not finish) are retried.
const retryInterval = 30 * time.Second

// retryLoop retries failed operations until ctx ends.
func (d *Daemon) retryLoop(ctx context.Context) {
	t := time.NewTicker(retryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.svc.RetryFailed(ctx); err != nil {
				d.log.Warn("retry of failed operations", "err", err)
			}
		}
	}
}

func (d *Daemon) close() {
	if d.target != nil {
		if err := d.target.Close(); err != nil {
			d.log.Warn("iscsi target close", "err", err)
		}
	}
	if d.ceph != nil {
		d.ceph.Close()
	}
	if d.db != nil {
		d.db.Close()
	}
}
