package core_test

import (
	"context"
	"testing"

	"github.com/bmi-go/bmi/service/fault"
)

// TestProjectNetworks: with per-project provisioning networks, each
// tenant's nodes go on a network of their own, created in HIL by BMI on
// the tenant's first provision and kept for its next ones; deprovision
// detaches; a third project finds no free network; removing a project
// deletes its network in HIL and frees it.
func TestProjectNetworks(t *testing.T) {
	ctx := context.Background()
	e := seededMode(t, true)
	e.hil.MACs["node4/eth0"], e.hil.Owner["node4"] = "52:54:00:00:00:04", "bmi_infra"
	e.must(e.svc.CopyImage(ctx, admin, "tenant-a", "debian", "tenant-b", "debian"))
	e.must(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0"))
	e.must(e.svc.Provision(ctx, alice, "tenant-a", "node2", "debian", "eth0"))
	e.must(e.svc.Provision(ctx, bob, "tenant-b", "node3", "debian", "eth0"))
	e.checkConsistent()
	a, b := e.nets.On["node1/eth0"], e.nets.On["node3/eth0"]
	if a == "" || b == "" || a == b || e.nets.On["node2/eth0"] != a {
		t.Fatalf("networks of node1, node2 (tenant-a) and node3 (tenant-b) = %q, %q, %q: want tenant-a's nodes together, tenant-b's apart",
			a, e.nets.On["node2/eth0"], b)
	}
	if e.nets.Nets[a] != "tenant-a/101" && e.nets.Nets[a] != "tenant-a/102" || e.nets.Nets[b][:9] != "tenant-b/" {
		t.Fatalf("HIL networks = %v, want one per tenant on its VLAN", e.nets.Nets)
	}
	// No network left for a third project.
	e.must(e.svc.CopyImage(ctx, admin, "tenant-a", "debian", "bmi_infra", "debian"))
	_, err := e.svc.Provision(ctx, admin, "bmi_infra", "node4", "debian", "eth0")
	wantKind(t, err, fault.Conflict)
	e.checkConsistent()

	e.ok(e.svc.Deprovision(ctx, bob, "tenant-b", "node3", "eth0"))
	if n, ok := e.nets.On["node3/eth0"]; ok {
		t.Fatalf("node3 still on %q after deprovision", n)
	}
	if e.nets.Nets[b] == "" {
		t.Fatalf("tenant-b's network %q was deleted at deprovision; it stays with the project", b)
	}
	e.ok(e.svc.RemoveProject(ctx, admin, "tenant-b", true))
	if _, ok := e.nets.Nets[b]; ok {
		t.Fatalf("tenant-b's network %q is still in HIL after project rm", b)
	}
	// Freed: the third project gets it.
	e.must(e.svc.Provision(ctx, admin, "bmi_infra", "node4", "debian", "eth0"))
	if e.nets.On["node4/eth0"] != b {
		t.Fatalf("node4 of bmi_infra is on %q, want the freed %q", e.nets.On["node4/eth0"], b)
	}
	e.checkConsistent()
}
