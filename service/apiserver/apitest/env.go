// Package apitest builds a complete BMI API for tests: a real core.Service
// on a real SQLite state store (service/store) in a directory the caller
// owns, with in-memory fakes of Ceph, the iSCSI target, the boot files and
// HIL, served by a real apiserver.Server. The fakes keep the semantics of
// the real parts (Ceph's layering rules and error kinds, HIL's users and
// node ownership); they make API, client and CLI tests fast and are never
// what proves a feature against real Ceph.
package apitest

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/bmi-go/bmi/service/apiserver"
	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/core/coretest"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

// Users of the fake HIL: name → password. Admin is a HIL admin; Alice is
// in tenant-a; Bob in tenant-b.
const (
	AdminUser, AdminPassword = "admin", "adminpw"
	AliceUser, AlicePassword = "alice", "alicepw"
	BobUser, BobPassword     = "bob", "bobpw"
)

// Env is one BMI behind an httptest server.
type Env struct {
	Dir    string
	DB     *store.DB
	Core   *core.Service
	API    *apiserver.Server
	Server *httptest.Server
	// Timeline is what the API serves as nodes' boot timelines; tests
	// record events in it.
	Timeline *boot.Timeline
	images   *coretest.Images
	exp      *coretest.Exporter
}

// New builds an Env in dir (a fresh temporary directory). Close it.
// seed adds projects tenant-a, tenant-b and bmi_infra, a Ceph image
// "golden" and its import "debian" in tenant-a.
func New(dir string, seed bool) (*Env, error) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "state.db"), logging.Discard())
	if err != nil {
		return nil, err
	}
	files := filepath.Join(dir, "bootfiles")
	if err := os.MkdirAll(files, 0o755); err != nil {
		db.Close()
		return nil, err
	}
	e := &Env{Dir: dir, DB: db, Timeline: boot.NewTimeline(), images: coretest.NewImages(""), exp: coretest.NewExporter()}
	hil := &coretest.HIL{
		Users: map[string]coretest.User{
			AdminUser: {Password: AdminPassword, Admin: true},
			AliceUser: {Password: AlicePassword, Projects: []string{"tenant-a"}},
			BobUser:   {Password: BobPassword, Projects: []string{"tenant-b"}},
		},
		MACs:  map[string]string{"node1/eth0": "52:54:00:00:00:01", "node2/eth0": "52:54:00:00:00:02", "node3/eth0": "52:54:00:00:00:03"},
		Owner: map[string]string{"node1": "tenant-a", "node2": "tenant-a", "node3": "tenant-b"},
	}
	e.Core, err = core.New(core.Config{UID: "t1", Snapshot: "bmi-snap", IQNPrefix: "iqn.2026-11.org.bmi", AdminProject: "bmi_infra"},
		core.Deps{Projects: db, Rows: db, Targets: db, Boots: db, Leases: db, Journal: db, Images: e.images, Exporter: e.exp, Files: coretest.Files{Dir: files}, Nodes: hil, Auth: hil, Log: logging.Discard()})
	if err != nil {
		db.Close()
		return nil, err
	}
	e.API, err = apiserver.New(apiserver.Config{Ops: e.Core, Log: logging.Discard(), MaxBodyBytes: 4096, Portal: "192.0.2.10:3260", Timeline: e.Timeline})
	if err != nil {
		db.Close()
		return nil, err
	}
	e.Server = httptest.NewServer(e.API.Handler())
	if seed {
		if err := e.seed(ctx); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

func (e *Env) seed(ctx context.Context) error {
	admin := core.Principal{User: AdminUser, Password: AdminPassword}
	for _, p := range []string{"tenant-a", "tenant-b", "bmi_infra"} {
		if _, err := e.Core.CreateProject(ctx, admin, p); err != nil {
			return err
		}
	}
	e.CephImage("golden", "debian-12", 1<<30)
	_, err := e.Core.ImportImage(ctx, admin, "tenant-a", "golden", core.ImportOptions{Name: "debian"})
	return err
}

// CephImage makes an image in the fake pool outside BMI (to import).
func (e *Env) CephImage(name, data string, size uint64) { e.images.Create(name, data, size) }

// CephImageData returns the content of an image of the fake pool, and
// whether it exists.
func (e *Env) CephImageData(name string) (string, bool) { return e.images.Data(name) }

// FailCeph makes the fake pool's method fail with err (nil clears).
func (e *Env) FailCeph(method string, err error) { e.images.SetFail(method, err) }

// Exported lists the IQNs the fake target exports.
func (e *Env) Exported() []string {
	l, _ := e.exp.Exported(context.Background())
	return l
}

// Close stops the server and closes the store.
func (e *Env) Close() {
	e.Server.Close()
	e.DB.Close()
}
