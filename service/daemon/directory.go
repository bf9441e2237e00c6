//go:build ceph_preview

package daemon

import (
	"context"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/iscsi"
	"github.com/bmi-go/bmi/service/store"
	"golang.org/x/sync/singleflight"
)

// directory is iscsi.Directory for a gateway: a SendTargets discovery at
// this gateway (at the group's portal, say) lists the disks the other
// live gateways of its group export too, each at that gateway's own
// address on the network the discovery came in at, under the credentials
// and initiator ACL its owner applies. Each discovery reads the database
// afresh (a node switched to a disk a moment ago finds it), but
// discoveries that arrive while a read runs share it, so a storm of them
// costs one read at a time.
type directory struct {
	loc *locator
	db  interface {
		Targets(ctx context.Context) ([]core.Target, error)
		Boots(ctx context.Context, project string, diskID int64) ([]core.BootConfig, error)
	}
	// nodeIQN is the initiator name of a node (its ACL entry).
	nodeIQN func(node string) string

	reads singleflight.Group
}

// remoteDisk is a disk another gateway exports.
type remoteDisk struct {
	export  iscsi.Export
	gateway string
	addrs   []string
}

var _ iscsi.Directory = (*directory)(nil)

// Elsewhere implements iscsi.Directory. A gateway with no address on the
// network of local has its disks left out (an initiator there could not
// reach them).
func (d *directory) Elsewhere(ctx context.Context, local string) ([]iscsi.Listed, error) {
	v, err, _ := d.reads.Do("", func() (any, error) { return d.disks(ctx) })
	if err != nil {
		return nil, err
	}
	disks := v.([]remoteDisk)
	portals := map[string]string{}
	var out []iscsi.Listed
	for _, r := range disks {
		p, ok := portals[r.gateway]
		if !ok {
			p, _ = d.loc.onNetworkOf(r.gateway, r.addrs, local)
			portals[r.gateway] = p
		}
		if p != "" {
			out = append(out, iscsi.Listed{Export: r.export, Portal: p})
		}
	}
	return out, nil
}

// disks returns the disks the other live gateways of the group export
// (not those being moved or unexported).
func (d *directory) disks(ctx context.Context) ([]remoteDisk, error) {
	m := d.loc.member.Load()
	if m == nil {
		return nil, fault.Errorf(fault.Unavailable, "this gateway has not joined its group yet")
	}
	locs, err := m.Locations(ctx)
	if err != nil {
		return nil, err
	}
	where := map[string]store.Location{}
	for _, l := range locs {
		if l.Gateway != m.ID() && l.Live && l.Want == store.WantExport && l.MoveTo == "" {
			where[l.IQN] = l
		}
	}
	var out []remoteDisk
	if len(where) > 0 {
		targets, err := d.db.Targets(ctx)
		if err != nil {
			return nil, err
		}
		boots, err := d.db.Boots(ctx, "", 0)
		if err != nil {
			return nil, err
		}
		nodes := map[int64][]string{}
		for _, b := range boots {
			nodes[b.DiskID] = append(nodes[b.DiskID], d.nodeIQN(b.Node))
		}
		for _, t := range targets {
			l, ok := where[t.IQN]
			if !ok {
				continue
			}
			exp := iscsi.Export{IQN: t.IQN, Initiators: union(t.Initiators, nodes[t.DiskID])}
			if t.CHAPSecret != "" {
				exp.CHAP = &iscsi.CHAP{User: t.CHAPUser, Secret: t.CHAPSecret}
			}
			out = append(out, remoteDisk{export: exp, gateway: l.Gateway, addrs: l.Addresses})
		}
	}
	return out, nil
}
