//go:build ceph_preview

package steps_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/sitetest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/steps"
)

func TestMain(m *testing.M) { os.Exit(cephtest.Main(m)) }

// localSite starts the built-in local site: hil-mock seeded from
// configs/hil-mock.example.yaml and a real bmid (service/daemon) on the
// test Ceph cluster with its iSCSI target on loopback. It has no
// machines: the @boots scenarios cannot run on it.
func localSite(t *testing.T) *steps.Site {
	t.Helper()
	testenv.RequireCommand(t, "iscsi-ls", "libiscsi-bin")
	testenv.RequireCommand(t, "iscsi-readcapacity16", "libiscsi-bin")
	ctx := context.Background()
	hm := &hilProc{path: filepath.Join(t.TempDir(), "hil.db")}
	if err := hm.StartHIL(ctx); err != nil {
		t.Fatal(err)
	}
	inv, err := hilmock.ReadInventory(sitetest.ExampleInventory())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hm.srv.Seed(ctx, inv); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() { // after bmid stops (cleanups run last-in first-out)
		if err := hm.StopHIL(context.Background()); err != nil {
			t.Errorf("hil-mock: %v", err)
		}
	})
	bmi := sitetest.Start(t, sitetest.Options{UID: cephtest.Prefix(t), HILURL: hm.url, TFTPRoot: "/usr/lib/ipxe"})
	base, conf, pool, portal := bmi.URL, bmi.Config.Ceph.Conf, bmi.Config.Ceph.Pool, bmi.Config.ISCSI.Portal
	site := &steps.Site{
		Name: "local", APIURL: base, BootURL: bmi.BootURL, HILURL: hm.url, HILSwitch: hm,
		Capabilities: []steps.Capability{steps.CapTwoTenants, steps.CapHILStop},
		Admin:        steps.Credentials{User: "hiladmin", Password: "admin-secret"},
		Operator:     steps.Credentials{User: "alice", Password: "alice-secret"},
		Other:        steps.Credentials{User: "bob", Password: "bob-secret"},
		Project:      "tenant-a", OtherProject: "tenant-b",
		Nodes:    []steps.Node{{Name: "node-01", NIC: "eth0"}, {Name: "node-02", NIC: "eth0"}},
		CephConf: conf, Pool: pool, Portal: portal, ImageMiB: 16,
	}
	if err := site.Validate(); err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(base, "hiladmin", "admin-secret")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tenant-a", "tenant-b"} {
		if _, err := admin.CreateProject(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	return site
}

func hilCred(s *steps.Site) hil.Credentials {
	return hil.Credentials{User: s.Operator.User, Password: s.Operator.Password}
}

// hilProc runs hil-mock and can stop it and start it again on the same
// address with the same database (the @hil-stop scenarios): bmid keeps
// its HIL URL.
type hilProc struct {
	mu     sync.Mutex
	path   string
	addr   string // host:port, kept across restarts
	url    string
	srv    *hilmock.Server
	cancel context.CancelFunc
	done   chan error
}

// StartHIL starts hil-mock (on the first call: on a free port).
func (h *hilProc) StartHIL(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		return fmt.Errorf("hil-mock is already running")
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	srv, err := hilmock.New(ctx, h.path, hilmock.Options{Listen: h.addr})
	if err != nil {
		cancel()
		return err
	}
	if h.addr == "" {
		h.url = srv.URL()
		h.addr = strings.TrimPrefix(h.url, "http://")
	}
	h.srv, h.cancel, h.done = srv, cancel, make(chan error, 1)
	go func(done chan error) { done <- srv.Serve(ctx) }(h.done)
	return nil
}

// StopHIL stops hil-mock: its port refuses connections until StartHIL.
func (h *hilProc) StopHIL(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv == nil {
		return nil
	}
	h.cancel()
	err := <-h.done
	if cerr := h.srv.Close(); err == nil {
		err = cerr
	}
	h.srv = nil
	return err
}
