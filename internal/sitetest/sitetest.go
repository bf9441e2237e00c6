//go:build ceph_preview

// Package sitetest starts an in-process BMI site for tests and benchmarks:
// a real bmid (service/daemon) on the test Ceph cluster (internal/cephtest)
// with its API and iSCSI target on loopback, talking to HIL — an
// in-process hil-mock seeded from configs/hil-mock.example.yaml unless the
// caller brings its own.
package sitetest

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab/cephlab"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/daemon"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/service/logging"
)

// Options shape the site; the zero value is a usable site.
type Options struct {
	// UID is bmid's uid (the prefix of its Ceph image names).
	UID string
	// HILURL is the HIL bmid talks to; empty starts an in-process hil-mock
	// seeded with the example inventory, stopped after bmid at cleanup.
	HILURL string
	// OpTimeout is ceph.op_timeout; default 20 s.
	OpTimeout time.Duration
	// ReadyWait bounds the wait for /readyz; default 60 s.
	ReadyWait time.Duration
	// TFTPRoot is boot.tftp.root; empty keeps the default.
	TFTPRoot string
	// Tune, when set, changes bmid's configuration last, before it is
	// validated (a benchmark's variant).
	Tune func(*config.Config)
}

// Site is a running bmid, stopped when the test ends.
type Site struct {
	// URL is bmid's API base URL.
	URL string
	// BootURL is the base URL of the boot listener (iPXE scripts). The
	// in-process site has no DHCP, so it serves scripts without the lease
	// and token checks (boot.ipxe.require_lease, script_token off).
	BootURL string
	// HILURL is the HIL bmid talks to.
	HILURL string
	// Config is bmid's configuration (Ceph conf and pool, portal...).
	Config config.Config
	// Daemon is bmid itself (a new one after Restart).
	Daemon *daemon.Daemon

	ctx     context.Context // the site's: ends at cleanup
	stopRun context.CancelFunc
	done    chan error
}

// Start starts the site and waits until bmid's /readyz answers 200.
func Start(tb testing.TB, o Options) *Site {
	tb.Helper()
	if o.OpTimeout == 0 {
		o.OpTimeout = 20 * time.Second
	}
	if o.ReadyWait == 0 {
		o.ReadyWait = 60 * time.Second
	}
	conf, pool := cephtest.Cluster(tb)
	ctx, cancel := context.WithCancel(context.Background())
	stopHIL := func() {}
	if o.HILURL == "" {
		hm, err := hilmock.New(ctx, filepath.Join(tb.TempDir(), "hil.db"), hilmock.Options{})
		if err != nil {
			cancel()
			tb.Fatal(err)
		}
		inv, err := hilmock.ReadInventory(ExampleInventory())
		if err == nil {
			_, err = hm.Seed(ctx, inv)
		}
		if err != nil {
			cancel()
			hm.Close()
			tb.Fatal(err)
		}
		hdone := make(chan error, 1)
		go func() { hdone <- hm.Serve(ctx) }()
		stopHIL = func() { <-hdone; hm.Close() }
		o.HILURL = hm.URL()
	}

	cfg := config.Default()
	cfg.UID = o.UID
	cfg.State.Path = filepath.Join(tb.TempDir(), "bmid.db")
	cfg.Ceph.Conf, cfg.Ceph.Pool, cfg.Ceph.OpTimeout = conf, pool, o.OpTimeout
	// bmid runs as its own least-privileged cephx user, as on a real site.
	cfg.Ceph.ID, cfg.Ceph.Keyring = cephUser(tb, conf, pool, "bmid-"+o.UID)
	cfg.HIL.URL = o.HILURL
	cfg.API.Listen = FreeAddr(tb)
	portal := FreeAddr(tb)
	cfg.ISCSI.Listen, cfg.ISCSI.Portal = []string{portal}, portal
	cfg.Boot.HTTPListen = FreeAddr(tb)
	cfg.Boot.IPXE.RequireLease, cfg.Boot.IPXE.ScriptToken = false, false
	if o.TFTPRoot != "" {
		cfg.Boot.TFTP.Root = o.TFTPRoot
	}
	if o.Tune != nil {
		o.Tune(&cfg)
	}
	d, err := func() (*daemon.Daemon, error) {
		if err := cfg.Validate("test"); err != nil {
			return nil, err
		}
		return daemon.New(ctx, cfg, logging.Discard())
	}()
	if err != nil {
		cancel()
		stopHIL()
		tb.Fatal(err)
	}
	site := &Site{HILURL: o.HILURL, Config: cfg, ctx: ctx}
	site.run(d)
	tb.Cleanup(func() {
		cancel()
		if err := <-site.done; err != nil {
			tb.Errorf("bmid: %v", err)
		}
		stopHIL()
	})
	base := "http://" + cfg.API.Listen
	for deadline := time.Now().Add(o.ReadyWait); ; time.Sleep(100 * time.Millisecond) {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("bmid not ready within %v", o.ReadyWait)
		}
	}
	site.URL = base
	site.BootURL = "http://" + cfg.Boot.HTTPListen
	return site
}

func (s *Site) run(d *daemon.Daemon) {
	ctx, stop := context.WithCancel(s.ctx)
	s.Daemon, s.stopRun, s.done = d, stop, make(chan error, 1)
	go func() { s.done <- d.Run(ctx) }()
}

// Restart stops bmid gracefully, as SIGTERM does, and starts a new one on
// the same state and configuration. It returns how long the new one took
// from its start (daemon.New) until its iSCSI portal accepted a
// connection: bmid exports every disk of the state before the portal
// listens, so that is its time to serve.
func (s *Site) Restart(tb testing.TB) time.Duration {
	tb.Helper()
	s.stopRun()
	if err := <-s.done; err != nil {
		tb.Fatalf("bmid: %v", err)
	}
	t0 := time.Now()
	d, err := daemon.New(s.ctx, s.Config, logging.Discard())
	if err != nil {
		tb.Fatal(err)
	}
	s.run(d)
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(2 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", s.Config.ISCSI.Portal, time.Second); err == nil {
			c.Close()
			return time.Since(t0)
		}
		if time.Now().After(deadline) {
			tb.Fatal("bmid's portal did not listen within 10 minutes of its start")
		}
	}
}

// cephUser creates client.<name> with cephlab.BMIDCaps on the test
// cluster (deleted when the test ends) and returns its id and keyring.
func cephUser(tb testing.TB, conf, pool, name string) (string, string) {
	tb.Helper()
	keyring := filepath.Join(tb.TempDir(), "ceph.client."+name+".keyring")
	args := append([]string{"--conf", conf, "auth", "get-or-create", "client." + name}, cephlab.BMIDCaps(pool)...)
	if out, err := exec.Command("ceph", append(args, "-o", keyring)...).CombinedOutput(); err != nil {
		tb.Fatalf("ceph auth get-or-create client.%s: %v: %s", name, err, out)
	}
	tb.Cleanup(func() { _ = exec.Command("ceph", "--conf", conf, "auth", "del", "client."+name).Run() })
	return name, keyring
}

// FreeAddr returns a loopback address with a port free at the time.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ExampleInventory is the path of configs/hil-mock.example.yaml.
func ExampleInventory() string {
	return filepath.Join(testenv.RepoRoot(), "configs", "hil-mock.example.yaml")
}
