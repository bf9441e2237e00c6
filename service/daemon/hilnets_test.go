package daemon

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/service/logging"
)

// TestHILNetworksProjectNetwork: BMI's HIL account (an administrator)
// creates a project's provisioning network in hil-mock as HIL does it
// (owner admin, open to the project only, on its VLAN), again without
// harm, refuses a same-named network that is someone else's, connects and
// detaches a node, and deletes it (gone already: fine). A non-admin
// account gets an error that says it must be an administrator.
func TestHILNetworksProjectNetwork(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := hilmock.New(ctx, filepath.Join(t.TempDir(), "hil.db"), hilmock.Options{Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := hilmock.ReadInventory("../../configs/hil-mock.example.yaml")
	if err == nil {
		_, err = srv.Seed(ctx, inv)
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	c := hil.New(srv.URL(), &http.Client{Timeout: 5 * time.Second})
	n := hilNetworks{c: c, cred: hil.Credentials{User: "hiladmin", Password: "admin-secret"}}
	alice := hil.Credentials{User: "alice", Password: "alice-secret"}

	for range 2 {
		if err := n.EnsureNetwork(ctx, "prov-a", "tenant-a", 310); err != nil {
			t.Fatalf("EnsureNetwork: %v", err)
		}
	}
	nw, err := c.ShowNetwork(ctx, alice, "prov-a")
	if id, _ := nw.VLAN(); err != nil || id != "310" || nw.Owner != "admin" || len(nw.Access) != 1 || nw.Access[0] != "tenant-a" {
		t.Fatalf("prov-a as tenant-a sees it: %+v, %v", nw, err)
	}
	if _, err := c.ShowNetwork(ctx, hil.Credentials{User: "bob", Password: "bob-secret"}, "prov-a"); err == nil {
		t.Fatal("tenant-b sees tenant-a's provisioning network")
	}
	if err := n.EnsureNetwork(ctx, "prov-a", "tenant-b", 310); fault.Of(err) != fault.Conflict {
		t.Fatalf("EnsureNetwork of tenant-a's network for tenant-b = %v, want a conflict", err)
	}
	if err := n.EnsureNetwork(ctx, "tenant-a-net", "tenant-a", 311); fault.Of(err) != fault.Conflict {
		t.Fatalf("EnsureNetwork over a tenant's own network = %v, want a conflict", err)
	}
	if err := n.ConnectNetwork(ctx, "node-01", "eth0", "prov-a", "vlan/native"); err != nil {
		t.Fatalf("connect node-01: %v", err)
	}
	if err := n.DeleteNetwork(ctx, "prov-a"); err == nil {
		t.Fatal("a network with a node on it was deleted")
	}
	if err := n.DetachNetwork(ctx, "node-01", "eth0", "prov-a"); err != nil {
		t.Fatalf("detach node-01: %v", err)
	}
	for range 2 {
		if err := n.DeleteNetwork(ctx, "prov-a"); err != nil {
			t.Fatalf("DeleteNetwork: %v", err)
		}
	}
	notAdmin := hilNetworks{c: c, cred: hil.Credentials{User: "bmi", Password: "bmi-secret"}}
	if err := notAdmin.EnsureNetwork(ctx, "prov-b", "tenant-b", 312); err == nil || !strings.Contains(err.Error(), "must be a HIL administrator") {
		t.Fatalf("EnsureNetwork as a non-administrator = %v, want an error saying it must be one", err)
	}
}
