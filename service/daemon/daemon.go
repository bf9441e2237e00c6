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
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/bmi-go/bmi/service/apiserver"
	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/bootfiles"
	"github.com/bmi-go/bmi/service/ceph"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/events"
	"github.com/bmi-go/bmi/service/guard"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/ipxe"
	"github.com/bmi-go/bmi/service/iscsi"
	"github.com/bmi-go/bmi/service/metrics"
	"github.com/bmi-go/bmi/service/store"
	"github.com/bmi-go/bmi/service/tftpd"
)

// Daemon is one running bmid.
type Daemon struct {
	cfg      config.Config
	log      *slog.Logger
	db       *store.DB
	ceph     *ceph.Store
	target   *iscsi.Target
	svc      *core.Service
	api      *apiserver.Server
	dhcp     *dhcpd.Server
	tftp     *tftpd.Server
	bootHTTP *ipxe.Server
	// provNets are the per-project provisioning networks' boot services
	// (boot.networks), instead of dhcp and bootHTTP.
	provNets []provNet
	sec      *security
	hil      *hil.Client
	timeline *boot.Shared
	reg      *prometheus.Registry
	metrics  *metrics.Metrics
	bus      *events.Bus
	journal  *watchedJournal
	boots    *bootWatch
	hilURL   string
	instance *instanceLock
	// placed is, on a gateway (gateway.id), the exporter across gateways;
	// nil for the only bmid of a database.
	placed  *placedExporter
	started time.Time // New was called: the start of "time to serve"
	// cephBack is signalled when Ceph answers again after an outage: the
	// retry loop retries the operations the outage failed at once.
	cephBack chan struct{}
}

// New builds every component from cfg. Nothing serves until Run.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Daemon, err error) {
	d := &Daemon{cfg: cfg, log: log, hilURL: cfg.HIL.URL, started: time.Now(),
		bus: &events.Bus{MaxClients: cfg.Events.MaxClients}}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	label := gatewayLabel(cfg)
	if d.reg, d.metrics, err = newRegistry(label); err != nil {
		return nil, err
	}
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
	if d.db, d.instance, err = openState(ctx, cfg.State, cfg.Gateway.ID != "", log.With("component", "store")); err != nil {
		return nil, err
	}
	if err := watchStateDB(d.reg, label, d.db.SQL()); err != nil {
		return nil, err
	}
	if err := d.loadKey(ctx); err != nil {
		return nil, err
	}
	d.timeline = boot.NewShared(d.db, log.With("component", "boot"))
	if d.ceph, err = ceph.Dial(ctx, ceph.Config{Conf: cfg.Ceph.Conf, ID: cfg.Ceph.ID, Keyring: cfg.Ceph.Keyring,
		Pool: cfg.Ceph.Pool, OpTimeout: cfg.Ceph.OpTimeout}, log.With("component", "ceph")); err != nil {
		return nil, err
	}
	d.ceph.SetErrorObserver(d.metrics.Ceph)
	d.cephBack = make(chan struct{}, 1)
	d.ceph.SetAnsweringHook(func() {
		select {
		case d.cephBack <- struct{}{}:
		default:
		}
	})
	d.journal = &watchedJournal{Journal: d.db, ops: d.metrics.Ops, bus: d.bus}
	if !cfg.ISCSI.CHAP {
		log.Warn("iSCSI CHAP is OFF: any host on the provisioning network can log in to any disk; use this for tests only")
	}
	d.sec = &security{db: d.db, prefix: cfg.ISCSI.IQNPrefix, uid: cfg.UID, log: log.With("component", "security")}
	logins := &guard.Logins{Fails: guard.New(cfg.Security.LoginFailInterval, cfg.Security.LoginFailBurst, nil), Record: d.sec.Record}
	d.boots = &bootWatch{timeline: d.timeline, boots: d.metrics.Boots, bus: d.bus, booting: map[string]core.BootConfig{}}
	tcfg := iscsi.Config{Listen: cfg.ISCSI.Listen, Portal: cfg.ISCSI.Portal, RequireCHAP: cfg.ISCSI.CHAP,
		DrainTimeout: cfg.ISCSI.DrainTimeout, Time2Wait: cfg.ISCSI.Time2Wait,
		Reservations: d.db, // SCSI reservations survive restarts; deprovisioning releases them
		Guard:        loginWatch{LoginGuard: logins, boots: d.boots}, Observer: d.metrics.ISCSI,
		Logins: &bootLogins{boots: d.db, prefix: cfg.ISCSI.IQNPrefix, uid: cfg.UID, tl: d.boots, log: log.With("component", "boot")},
	}
	loc := &locator{}
	if cfg.Gateway.ID != "" {
		tcfg.Locator = loc // logins for disks placed on another gateway are redirected there
		// discoveries list the other gateways' disks too
		tcfg.Directory = &directory{loc: loc, db: d.db, nodeIQN: d.sec.nodeIQN}
	}
	if d.target, err = iscsi.New(tcfg, log.With("component", "iscsi")); err != nil {
		return nil, err
	}
	if err := d.metrics.WatchISCSI(func() metrics.ISCSIStats {
		st := d.target.Stats()
		return metrics.ISCSIStats{Targets: st.Targets, Sessions: st.Sessions, InFlight: st.InFlight}
	}); err != nil {
		return nil, err
	}
	d.sec.target = d.target
	hc := hil.New(cfg.HIL.URL, &http.Client{Timeout: cfg.HIL.Timeout},
		hil.WithActionTimeout(cfg.HIL.NetworkTimeout), hil.WithLogger(log.With("component", "hil")))
	d.hil = hc
	auth := newHILAuth(hc, cfg.API.AuthCacheTTL)
	local := exporter{target: d.target, images: d.ceph, sec: d.sec, log: log.With("component", "iscsi")}
	deps := core.Deps{Projects: d.db, Rows: d.db, Targets: d.db, Boots: d.db, Leases: d.db, Journal: d.journal, Images: cephImages{d.ceph},
		Exporter: local, Nodes: auth, Auth: auth, Log: log.With("component", "core")}
	if cfg.Gateway.ID != "" {
		if d.placed, err = d.joinGateway(ctx, local); err != nil {
			return nil, err
		}
		deps.Gateway, deps.Exporter = d.placed.member, d.placed
		loc.member.Store(d.placed.member)
	}
	if cfg.HIL.User != "" {
		pw, err := readPassword(cfg.HIL.PasswordFile)
		if err != nil {
			return nil, err
		}
		deps.Networks = hilNetworks{c: hc, cred: hil.Credentials{User: cfg.HIL.User, Password: pw}}
	}
	if len(cfg.Boot.Networks) > 0 {
		deps.ProjectNets = d.db
	}
	if cfg.Boot.Files.Enabled {
		deps.Files = files{w: &bootfiles.Writer{PXELinuxDir: cfg.Boot.Files.PXELinuxDir, IPXEDir: cfg.Boot.Files.IPXEDir,
			Interface: cfg.Boot.Files.IPXEInterface, Log: log.With("component", "bootfiles")}, portal: host}
	}
	if d.svc, err = core.New(core.Config{UID: cfg.UID, Snapshot: cfg.Ceph.Snapshot, IQNPrefix: cfg.ISCSI.IQNPrefix,
		AdminProject: cfg.AdminProject, BusyWait: cfg.Ceph.BusyWait,
		ProvisioningNetwork: cfg.HIL.ProvisioningNetwork, Channel: cfg.HIL.Channel,
		ProjectNetworks: projectNetworks(cfg.Boot.Networks)}, deps); err != nil {
		return nil, err
	}
	d.sec.svc = d.svc
	d.boots.nodes = d.svc
	specs := bootSpecs{svc: d.svc, store: d.db, portal: host, port: port, initiator: d.sec.nodeIQN}
	if cfg.Boot.RequirePowerOn {
		if deps.Networks == nil {
			log.Warn("boot.require_power_on is set but hil.user is not: bmid cannot ask HIL whether a node is on, " +
				"so a host that takes a powered-off node's MAC gets its lease and script")
		} else {
			specs.power = guard.NewPowerGate(hc, deps.Networks.(hilNetworks).cred, 2*time.Second, log.With("component", "boot"))
		}
	}
	r, err := ipxe.NewRenderer(ipxe.OptionsFromConfig(cfg.Boot.IPXE))
	if err != nil {
		return nil, err
	}
	d.sec.script = func(bc core.BootConfig, t core.Target) ([]byte, error) { return r.Script(specs.spec(bc, t)) }
	if err := d.buildBoot(specs); err != nil {
		return nil, err
	}
	if len(cfg.Boot.Networks) > 0 {
		if err := d.buildProvNets(specs); err != nil {
			return nil, err
		}
	} else if err := d.buildBootHTTP(specs); err != nil {
		return nil, err
	}
	stream := eventStream{bus: d.bus, auth: auth, projects: d.db, adminProject: cfg.AdminProject}
	d.api, err = apiserver.New(apiserver.Config{Ops: aclOps{Service: d.svc, sec: d.sec, hil: d.hil, placed: d.placed}, Log: d.log.With("component", "api"), Ready: d.ready,
		Listen: d.cfg.API.Listen, TLSCert: d.cfg.API.TLSCert, TLSKey: d.cfg.API.TLSKey, MaxBodyBytes: d.cfg.API.MaxBodyBytes,
		Security: d.sec, Timeline: d.timeline, Portal: d.cfg.ISCSI.Portal, AuthFailures: guard.New(cfg.Security.AuthFailInterval, cfg.Security.AuthFailBurst, nil),
		Registry: d.reg, Events: stream, UI: statusPage{svc: d.svc, stream: stream, journal: d.db, timeline: d.timeline}})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// buildBootHTTP builds the provisioning network's own HTTP listener
// (boot.http_listen): iPXE scripts and binaries, never the API.
func (d *Daemon) buildBootHTTP(specs bootSpecs) error {
	c := d.cfg.Boot
	if c.HTTPListen == "" {
		return nil
	}
	r, err := ipxe.NewRenderer(ipxe.OptionsFromConfig(c.IPXE))
	if err != nil {
		return err
	}
	h := &ipxe.Handler{Specs: specs, Renderer: r, Log: d.log.With("component", "ipxe"),
		Recorder: d.boots, Faults: boot.FaultsFromConfig(c.Faults.HTTP), RequireLease: c.IPXE.RequireLease, Refused: d.scriptRefused}
	if d.dhcp != nil {
		h.Clients = d.dhcp
	}
	if h.RequireLease && (d.dhcp == nil || d.dhcp.Mode == dhcpd.ModeProxy) {
		return fmt.Errorf("boot.ipxe.require_lease needs bmid's DHCP in server mode (boot.interfaces, boot.dhcp.mode: server); " +
			"in proxy mode turn it off and keep boot.ipxe.script_token")
	}
	if c.IPXE.ScriptToken {
		if d.dhcp == nil {
			return fmt.Errorf("boot.ipxe.script_token needs bmid's DHCP (boot.interfaces): the token travels in its answer")
		}
		h.Tokens = ipxe.NewTokens(nil)
		d.dhcp.Tokens = h.Tokens
	}
	if c.TFTP.Root != "" {
		if st, err := os.Stat(c.TFTP.Root); err == nil && st.IsDir() {
			h.Files = os.DirFS(c.TFTP.Root)
		}
	}
	d.bootHTTP = &ipxe.Server{Addr: c.HTTPListen, Handler: d.metrics.HTTP.Wrap(h), Log: d.log.With("component", "ipxe")}
	return nil
}

func (d *Daemon) buildBoot(specs bootSpecs) error {
	b := d.cfg.Boot
	if len(b.Interfaces) > 0 {
		var err error
		d.dhcp, err = dhcpd.NewFromConfig(b, specs, leases{s: d.db, now: time.Now}, d.log.With("component", "dhcp"), d.boots)
		if err != nil {
			return err
		}
		d.dhcp.Observer = d.metrics.DHCP
		d.dhcp.OnlyHolding = d.cfg.Gateway.ID != "" // the gateway holding the address serves the boots
		if err := d.dhcp.Check(); err != nil {
			return err
		}
	}
	if len(b.Networks) > 0 {
		return nil // each network has its own (buildProvNets)
	}
	var clients tftpd.Clients
	if d.dhcp != nil {
		clients = d.dhcp
	}
	d.tftp = tftpd.NewFromConfig(b, d.log.With("component", "tftp"), clients, d.boots)
	if d.tftp != nil {
		d.tftp.Observer = d.metrics.TFTP
	}
	return nil
}

// loadKey reads (or at first start creates) the key that seals CHAP
// secrets in the state database, and seals those still in the clear.
func (d *Daemon) loadKey(ctx context.Context) error {
	path := d.cfg.Security.KeyFile
	if path == "" {
		path = filepath.Join(filepath.Dir(d.cfg.State.Path), "secret.key")
	}
	sealed, _, err := d.db.SealedSecrets(ctx)
	if err != nil {
		return err
	}
	key, created, err := store.LoadKey(path, sealed == 0)
	if err != nil {
		return err
	}
	if created {
		d.log.Info("secrets key created; back it up with the state database", "path", path)
	}
	if err := d.db.SetKey(key); err != nil {
		return err
	}
	n, err := d.db.SealAll(ctx)
	if err != nil {
		return fmt.Errorf("seal CHAP secrets: %w", err)
	}
	if n > 0 {
		d.log.Info("CHAP secrets sealed in the state database", "count", n)
	}
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
	defer d.bus.Close() // event streams end before the API's shutdown waits for them
	// A gateway renews its lease from the start: recovery may take longer
	// than the lease.
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	var keep chan error
	if d.placed != nil {
		keep = make(chan error, 1)
		go func() { keep <- d.keepGateway(kctx) }()
	}
	d.journal.startup.Store(true)
	rep, err := d.svc.Start(ctx)
	d.journal.startup.Store(false)
	if err != nil {
		return fmt.Errorf("start-up recovery: %w", err)
	}
	// The ACLs of all the disks Start exported, in one sweep (exports
	// during start-up skip their own: one sweep each would cost n^2).
	d.sec.syncAll(ctx)
	d.sec.startedUp()
	d.log.Info("start-up recovery done", "recovered_operations", rep.Recovered, "reexported", len(rep.Reexported),
		"problems", len(rep.Errors), "since_start", time.Since(d.started).Round(time.Millisecond).String())
	for _, p := range rep.Errors {
		d.log.Warn("start-up recovery", "problem", p)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.target.Serve(gctx) })
	// Running nodes log in again from here on. The audit runs before the
	// API and the boot services serve, so that no operation races it (it
	// opens every image), and after the portal, so that nodes do not wait
	// for it.
	d.audit(gctx)
	g.Go(func() error { return d.api.Serve(gctx) })
	if d.dhcp != nil {
		g.Go(func() error { return d.dhcp.Serve(gctx) })
	}
	if d.tftp != nil {
		g.Go(func() error { return d.tftp.Serve(gctx) })
	}
	if d.bootHTTP != nil {
		g.Go(func() error { return d.bootHTTP.Serve(gctx) })
	}
	for _, n := range d.provNets {
		g.Go(func() error { return n.dhcp.Serve(gctx) })
		g.Go(func() error { return n.http.Serve(gctx) })
		if n.tftp != nil {
			g.Go(func() error { return n.tftp.Serve(gctx) })
		}
	}
	g.Go(func() error { d.retryLoop(gctx); return nil })
	g.Go(func() error { return d.timeline.Run(gctx) })
	if keep != nil {
		g.Go(func() error {
			select {
			case err := <-keep:
				return err // the lease is lost: stop serving
			case <-gctx.Done():
				kcancel()
				return <-keep
			}
		})
	}
	// Event streams end as soon as bmid starts to stop.
	g.Go(func() error { <-gctx.Done(); d.bus.Close(); return nil })
	d.log.Info("bmid serving", "api", d.cfg.API.Listen, "iscsi", d.cfg.ISCSI.Listen, "dhcp", d.cfg.Boot.Interfaces, "tftp", d.cfg.Boot.TFTP.Listen, "boot_http", d.cfg.Boot.HTTPListen)
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// audit compares Ceph, the target and the boot files with the database
// once the portal listens (Start did only what running nodes wait for) and
// logs what it finds; `bmi reconcile` reports and fixes the same.
func (d *Daemon) audit(ctx context.Context) {
	rep, err := d.svc.Audit(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("start-up audit", "err", err)
		}
		return
	}
	d.log.Info("start-up audit done", "orphan_images", len(rep.OrphanImages), "missing_images", len(rep.MissingImages),
		"stray_targets", len(rep.StrayTargets), "stray_boot_files", len(rep.StrayBootFiles), "problems", len(rep.Errors))
	for _, l := range rep.Left {
		d.log.Warn("start-up audit: bmi reconcile --fix removes what it can", "finding", l)
	}
	for _, p := range rep.Errors {
		d.log.Warn("start-up audit", "problem", p)
	}
}

// retryInterval is how often operations that failed after their commit
// step (or whose rollback did not finish) are retried: soon after the
// dependency that failed them is back (HIL answering), so a provision
// refused during an outage leaves nothing behind for long. Ceph answering
// again after an outage triggers a retry at once (cephBack). With none
// failed, a retry is one query of the journal.
const retryInterval = 10 * time.Second

// pruneInterval is how often the audit log is cut to its size.
const pruneInterval = 30 * time.Second

// aclInterval is how often every target's initiator ACL is applied again
// from the state DB, for changes made outside the API (operations the
// journal finished, another process on the same DB).
const aclInterval = 5 * time.Second

// retryLoop retries failed operations until ctx ends, and keeps the
// initiator ACLs in step.
func (d *Daemon) retryLoop(ctx context.Context) {
	t := time.NewTicker(retryInterval)
	defer t.Stop()
	acl := time.NewTicker(aclInterval)
	defer acl.Stop()
	prune := time.NewTicker(pruneInterval)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-acl.C:
			d.sec.syncAll(ctx)
		case <-t.C:
			d.retryFailed(ctx)
		case <-d.cephBack:
			d.log.Info("ceph answers again: retrying the operations its outage failed")
			d.retryFailed(ctx)
		case <-prune.C:
			if n, err := d.db.PruneAudit(ctx, d.cfg.Security.AuditMaxRows); err != nil {
				d.log.Warn("audit log pruning", "err", err)
			} else if n > 0 {
				d.log.Info("audit log pruned", "deleted", n, "kept", d.cfg.Security.AuditMaxRows)
			}
		}
	}
}

func (d *Daemon) retryFailed(ctx context.Context) {
	if err := d.svc.RetryFailed(ctx); err != nil {
		d.log.Warn("retry of failed operations", "err", err)
	}
	d.sec.syncAll(ctx)
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
	d.instance.release()
}
