package guard

import (
	"context"
	"errors"

	"github.com/bmi-go/bmi/service/fault"
)

// NetworkGate withholds boot configs from the provisioning networks they
// do not belong to (per-project provisioning networks, boot.networks):
// one gate per network, in front of that network's DHCP server and boot
// HTTP listener. A node's lease and script are given only on the network
// of the node's project; elsewhere the node is as unknown as a MAC without
// a boot config, so a tenant's machine that takes another project's node's
// MAC learns nothing and gets nothing.
type NetworkGate struct {
	// Network is the provisioning network this gate guards.
	Network string
	// NetworkOf returns the network a project was given; an error of kind
	// fault.NotFound when it has none.
	NetworkOf func(ctx context.Context, project string) (string, error)
	// Refused, when set, is told of each boot config withheld: the node,
	// its project, its MAC and the network its project has ("" none).
	Refused func(ctx context.Context, node, project, mac, has string)
}

// Allow returns nil when node (of project, booting with mac) boots on the
// gate's network; otherwise an error of kind fault.NotFound, or the
// lookup's error. A nil gate allows everything (one shared network).
func (g *NetworkGate) Allow(ctx context.Context, node, project, mac string) error {
	if g == nil {
		return nil
	}
	has, err := g.NetworkOf(ctx, project)
	if err != nil && !errors.Is(err, fault.ErrNotFound) {
		return err
	}
	if has == g.Network && has != "" {
		return nil
	}
	if g.Refused != nil {
		g.Refused(ctx, node, project, mac, has)
	}
	return fault.Errorf(fault.NotFound, "node %q of project %q does not boot on provisioning network %q", node, project, g.Network)
}
