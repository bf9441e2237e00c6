package core_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// TestCheckNetwork: the original's NETWORK argument passes only when it is
// the provisioning network, and the error names the network BMI uses.
func TestCheckNetwork(t *testing.T) {
	ctx := context.Background()
	e := seeded(t)
	tests := map[string]struct {
		who     core.Principal
		project string
		network string
		kind    fault.Kind
		names   string // the error must name this
	}{
		"the provisioning network": {alice, "tenant-a", "bmi-provision", "", ""},
		"another network":          {alice, "tenant-a", "tenant-a-net", fault.Invalid, `BMI provisions nodes on "bmi-provision"`},
		"a bad name":               {alice, "tenant-a", "a b", fault.Invalid, "network name"},
		"not a member":             {alice, "tenant-b", "bmi-provision", fault.Forbidden, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := e.svc.CheckNetwork(ctx, tc.who, tc.project, tc.network)
			if tc.kind == "" {
				if err != nil {
					t.Fatalf("CheckNetwork(%q) = %v, want nil", tc.network, err)
				}
				return
			}
			wantKind(t, err, tc.kind)
			if !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("CheckNetwork(%q) = %v, want it to name %q", tc.network, err, tc.names)
			}
		})
	}
}

// TestSetBootKeepsOwnDisk: setting a provisioned node's boot config again
// (its NIC, say) keeps the disk pro made its own, so dpro deletes it;
// pointing it at another disk does not make that disk its own.
func TestSetBootKeepsOwnDisk(t *testing.T) {
	ctx := context.Background()
	e := seeded(t)
	e.must(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0"))
	b, err := e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "node1")
	if err != nil || !b.OwnsDisk {
		t.Fatalf("SetBoot on the node's own disk = %+v, %v; want it to own the disk", b, err)
	}
	e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "d2"))
	if b, err = e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "d2"); err != nil || b.OwnsDisk {
		t.Fatalf("SetBoot on another disk = %+v, %v; want it not to own d2", b, err)
	}
}
