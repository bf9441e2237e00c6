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
