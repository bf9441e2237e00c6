package guard

import (
	"context"
	"errors"
	"testing"

	"github.com/bmi-go/bmi/service/fault"
)

func TestNetworkGate(t *testing.T) {
	nets := map[string]string{"tenant-a": "prov-a", "tenant-b": "prov-b"}
	of := func(_ context.Context, p string) (string, error) {
		if p == "broken" {
			return "", fault.Errorf(fault.Unavailable, "db down")
		}
		if n, ok := nets[p]; ok {
			return n, nil
		}
		return "", fault.Errorf(fault.NotFound, "none")
	}
	var refused []string
	g := &NetworkGate{Network: "prov-a", NetworkOf: of,
		Refused: func(_ context.Context, node, project, mac, has string) { refused = append(refused, node+"@"+has) }}
	tests := []struct {
		project string
		want    fault.Kind // "" allowed
	}{
		{"tenant-a", ""},
		{"tenant-b", fault.NotFound},
		{"no-network-yet", fault.NotFound},
		{"broken", fault.Unavailable},
	}
	for _, tc := range tests {
		err := g.Allow(context.Background(), "n1", tc.project, "52:54:00:00:00:01")
		if tc.want == "" && err != nil || tc.want != "" && fault.Of(err) != tc.want {
			t.Errorf("Allow(%s) = %v, want kind %q", tc.project, err, tc.want)
		}
	}
	if len(refused) != 2 || refused[0] != "n1@prov-b" || refused[1] != "n1@" {
		t.Errorf("refusals reported = %v, want n1@prov-b, n1@", refused)
	}
	// The empty network matches no project without one.
	empty := &NetworkGate{Network: "", NetworkOf: of}
	if err := empty.Allow(context.Background(), "n1", "no-network-yet", ""); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("a gate of no network allowed a project without one: %v", err)
	}
	var none *NetworkGate
	if err := none.Allow(context.Background(), "n1", "tenant-b", ""); err != nil {
		t.Errorf("nil gate = %v, want allowed", err)
	}
}
