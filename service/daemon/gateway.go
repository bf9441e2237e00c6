//go:build ceph_preview

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bmi-go/bmi/service/ceph"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/iscsi"
	"github.com/bmi-go/bmi/service/store"
)

// member is this bmid as one gateway of a group on a shared PostgreSQL
// database (gateway.id): core.Gateway over store.Gateway, which fences a
// dead gateway's Ceph client before the take-over goes on.
type member struct {
	*store.Gateway
	ceph *ceph.Store
	log  *slog.Logger

	mu sync.Mutex
	// unfenced are gateways taken over whose Ceph client is not yet
	// blocklisted: their operations are not recovered, nor their disks
	// exported, until it is.
	unfenced []store.DeadGateway
}

var _ core.Gateway = (*member)(nil)

// ClaimExpired takes over the dead gateways of the group and fences each
// in Ceph (its client blocklisted: a gateway that was paused or cut off
// rather than dead can never write again) before returning it to be
// recovered. One whose fencing fails is returned by a later call, once
// fenced.
func (m *member) ClaimExpired(ctx context.Context) ([]string, error) {
	dead, err := m.ClaimExpiredGateways(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unfenced = append(m.unfenced, dead...)
	var fenced []string
	var errs []error
	left := m.unfenced[:0]
	for _, d := range m.unfenced {
		if d.CephClient != "" {
			if ferr := m.ceph.Fence(ctx, d.CephClient); ferr != nil {
				errs = append(errs, fmt.Errorf("fence gateway %s (Ceph client %s): %w", d.ID, d.CephClient, ferr))
				left = append(left, d)
				continue
			}
		}
		m.log.Warn("fenced a dead gateway in Ceph; taking over its disks and operations", "dead", d.ID, "client", d.CephClient)
		fenced = append(fenced, d.ID)
	}
	m.unfenced = left
	return fenced, errors.Join(append(errs, err)...)
}

// allFenced reports whether every gateway taken over is fenced: until
// then its disks, now placed on this gateway, are not exported.
func (m *member) allFenced() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.unfenced) == 0
}

// locator is iscsi.Locator across gateways: where a disk this gateway
// does not export is served, to redirect a login for it there.
type locator struct {
	member atomic.Pointer[member] // set once the gateway has joined
	// networks returns this host's addresses with their networks'
	// lengths (nil: its interfaces').
	networks func() ([]netip.Prefix, error)
}

var _ iscsi.Locator = (*locator)(nil)

// Locate returns the own portal address (gateway.addresses) of the live
// gateway iqn is placed on, the one on the network of local (where the
// login came in); "" if iqn is placed nowhere (no such disk, or not
// exported: the login is refused as not found). Every other case is an
// error, which the target answers with "service unavailable" so that the
// initiator tries again: the disk is placed on this gateway but not
// exported yet (a take-over or an export under way), it is being moved,
// its gateway's lease has expired (a take-over is due) or it recorded no
// address on that network. A gateway that died within its lease still
// looks live: the login is redirected to its address, which fails to
// connect (or, when keepalived moved the address here, is answered
// "service unavailable" by the target itself), and the initiator tries
// again as well.
func (l *locator) Locate(ctx context.Context, iqn, local string) (string, error) {
	m := l.member.Load()
	if m == nil {
		return "", fault.Errorf(fault.Unavailable, "this gateway has not joined its group yet")
	}
	loc, err := m.Gateway.Locate(ctx, iqn)
	switch {
	case fault.Of(err) == fault.NotFound:
		return "", nil
	case err != nil:
		return "", err
	case loc.Gateway == m.ID():
		return "", fault.Errorf(fault.Unavailable, "placed on this gateway, not exported yet")
	case loc.MoveTo != "":
		return "", fault.Errorf(fault.Unavailable, "being moved from gateway %s to %s", loc.Gateway, loc.MoveTo)
	case loc.Want != store.WantExport:
		return "", fault.Errorf(fault.Unavailable, "gateway %s is unexporting it", loc.Gateway)
	case !loc.Live:
		return "", fault.Errorf(fault.Unavailable, "gateway %s's lease has expired: it is being taken over", loc.Gateway)
	}
	return l.onNetworkOf(loc.Gateway, loc.Addresses, local)
}

// onNetworkOf picks, of a gateway's addresses, the one on the network of
// local: the network of this host's interface address that holds local's
// IP. (One that keepalived moved here comes back here: the target then
// answers "service unavailable", as the redirect would loop.)
func (l *locator) onNetworkOf(gw string, addrs []string, local string) (string, error) {
	if len(addrs) == 0 {
		return "", fault.Errorf(fault.Unavailable, "gateway %s has no gateway.addresses to redirect to: log in there", gw)
	}
	lp, err := netip.ParseAddrPort(local)
	if err != nil {
		return "", fault.Errorf(fault.Unavailable, "login at %q: %v", local, err)
	}
	nets := l.networks
	if nets == nil {
		nets = interfaceNetworks
	}
	ps, err := nets()
	if err != nil {
		return "", fault.Errorf(fault.Unavailable, "this host's networks: %v", err)
	}
	for _, p := range ps {
		if !p.Contains(lp.Addr().Unmap()) {
			continue
		}
		for _, a := range addrs {
			if ap, err := netip.ParseAddrPort(a); err == nil && p.Contains(ap.Addr().Unmap()) {
				return a, nil
			}
		}
	}
	return "", fault.Errorf(fault.Unavailable, "gateway %s has no address on the network of %s (its addresses: %s)", gw, local, strings.Join(addrs, " "))
}

// interfaceNetworks are this host's interface addresses with their
// networks' lengths.
func interfaceNetworks() ([]netip.Prefix, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range as {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		bits, _ := n.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), bits))
	}
	return out, nil
}

// placeWait bounds how long an operation waits for another gateway to
// export (or unexport) a disk placed on it.
const placeWait = time.Minute

// placeSync is how often a gateway looks for disks placed on it, moved
// away from it or to unexport.
const placeSync = time.Second

// placedExporter is core.Exporter across gateways: a disk is placed on one
// live gateway of the group (store.Gateway.Place, balanced by count), and
// only that gateway exports it. An operation here on a disk placed on
// another gateway asks that gateway (through its placement row) and waits
// until it has done it.
type placedExporter struct {
	local  exporter
	member *member
	log    *slog.Logger
	// wait bounds waiting for another gateway (placeWait).
	wait time.Duration
}

var _ core.Exporter = (*placedExporter)(nil)

func (e *placedExporter) self() string { return e.member.ID() }

func (e *placedExporter) Export(ctx context.Context, spec core.ExportSpec) error {
	p, err := e.member.Place(ctx, spec.IQN)
	if err != nil {
		return fmt.Errorf("export %s: %w", spec.IQN, err)
	}
	if p.Want != store.WantExport {
		return fault.Errorf(fault.Unavailable, "export %s: gateway %s is still unexporting it", spec.IQN, p.Gateway)
	}
	if p.Gateway == e.self() && p.MoveTo == "" {
		if !e.member.allFenced() {
			return fault.Errorf(fault.Unavailable, "export %s: a gateway taken over is not fenced yet", spec.IQN)
		}
		if err := e.local.Export(ctx, spec); err != nil {
			return err
		}
		if _, err := e.member.MarkExported(ctx, spec.IQN); err != nil {
			return err
		}
		return nil
	}
	return e.waitFor(ctx, spec.IQN, "export", func(p store.Placement, err error) bool {
		return err == nil && p.ExportedAt > 0 && p.MoveTo == ""
	})
}

func (e *placedExporter) Unexport(ctx context.Context, iqn string) error {
	p, err := e.member.Placement(ctx, iqn)
	if fault.Of(err) == fault.NotFound {
		return e.local.Unexport(ctx, iqn) // placed nowhere: a stray of this gateway's target, if anything
	}
	if err != nil {
		return fmt.Errorf("unexport %s: %w", iqn, err)
	}
	if p.Gateway == e.self() {
		if err := e.local.Unexport(ctx, iqn); err != nil {
			return err
		}
		return e.member.Unplace(ctx, iqn)
	}
	if err := e.member.RequestUnexport(ctx, iqn); err != nil {
		return err
	}
	return e.waitFor(ctx, iqn, "unexport", func(_ store.Placement, err error) bool { return fault.Of(err) == fault.NotFound })
}

// applyACL has the gateway that exports iqn apply its initiator ACL now,
// and waits until it has: after an operation here gave a node the disk,
// the node must be let in at once, not at the owner's next periodic
// sweep. A disk exported here had its ACL applied already.
func (e *placedExporter) applyACL(ctx context.Context, iqn string) error {
	asked, err := e.member.RequestACL(ctx, iqn)
	if err != nil || !asked {
		return err
	}
	return e.waitFor(ctx, iqn, "apply the ACL of", func(p store.Placement, err error) bool {
		return err == nil && p.ExportedAt > 0 || fault.Of(err) == fault.NotFound
	})
}

// waitFor polls iqn's placement until done says so, or e.wait passes.
func (e *placedExporter) waitFor(ctx context.Context, iqn, what string, done func(store.Placement, error) bool) error {
	deadline := time.Now().Add(e.wait)
	for {
		p, err := e.member.Placement(ctx, iqn)
		if done(p, err) {
			return nil
		}
		if err != nil && fault.Of(err) != fault.NotFound {
			return fmt.Errorf("%s %s: %w", what, iqn, err)
		}
		if time.Now().After(deadline) {
			return fault.Errorf(fault.Unavailable, "%s %s: gateway %s has not done it within %s (is it up?)", what, iqn, p.Gateway, e.wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Exported is what this gateway's target exports and every disk placed on
// another gateway (that gateway's to export): the core exports neither
// again.
func (e *placedExporter) Exported(ctx context.Context) ([]string, error) {
	live, err := e.local.Exported(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := e.member.Placements(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.Gateway != e.self() && !slices.Contains(live, p.IQN) {
			live = append(live, p.IQN)
		}
	}
	return live, nil
}

// sync brings this gateway's target in line with the placements: it
// unexports the disks asked of it and those moved away (handing them
// over), and exports those placed on it that it does not export yet
// (placed by another gateway's operation, taken over from a dead
// gateway, moved to it).
func (e *placedExporter) sync(ctx context.Context, svc *core.Service) {
	if !e.member.allFenced() {
		return
	}
	ps, err := e.member.Placements(ctx)
	if err != nil {
		e.log.Warn("placements", "err", err)
		return
	}
	live, err := e.local.Exported(ctx)
	if err != nil {
		e.log.Warn("exported targets", "err", err)
		return
	}
	placed := map[string]string{}
	var export []string
	for _, p := range ps {
		placed[p.IQN] = p.Gateway
		if p.Gateway != e.self() {
			continue
		}
		switch {
		case p.Want == store.WantUnexport:
			if err := e.local.Unexport(ctx, p.IQN); err != nil {
				e.log.Warn("unexport asked by another gateway", "iqn", p.IQN, "err", err)
				continue
			}
			if err := e.member.Unplace(ctx, p.IQN); err != nil {
				e.log.Warn("unplace", "iqn", p.IQN, "err", err)
			}
		case p.MoveTo != "":
			if err := e.local.Unexport(ctx, p.IQN); err != nil {
				e.log.Warn("unexport of a disk moved away", "iqn", p.IQN, "to", p.MoveTo, "err", err)
				continue
			}
			if err := e.member.HandOver(ctx, p.IQN); err != nil {
				e.log.Warn("hand-over", "iqn", p.IQN, "to", p.MoveTo, "err", err)
				continue
			}
			e.log.Info("disk moved to another gateway", "iqn", p.IQN, "to", p.MoveTo)
		case !slices.Contains(live, p.IQN):
			export = append(export, p.IQN)
		case p.ExportedAt == 0:
			// Exported, or asked to apply its ACL again (RequestACL).
			e.local.sec.exported(ctx, p.IQN)
			if _, err := e.member.MarkExported(ctx, p.IQN); err != nil {
				e.log.Warn("mark exported", "iqn", p.IQN, "err", err)
			}
		}
	}
	for _, iqn := range live {
		if gw, ok := placed[iqn]; ok && gw != e.self() {
			// Placed on another gateway (taken over from this one while it
			// did not renew its lease): never export it twice.
			if err := e.local.Unexport(ctx, iqn); err != nil {
				e.log.Warn("unexport of a disk placed elsewhere", "iqn", iqn, "gateway", gw, "err", err)
			}
		}
	}
	if len(export) == 0 {
		return
	}
	rep := svc.ExportTargets(ctx, export)
	for _, p := range rep.Errors {
		e.log.Warn("export of placed disks", "problem", p)
	}
	if len(rep.Reexported) > 0 {
		e.log.Info("exported disks placed on this gateway", "disks", rep.Reexported)
	}
}

// keepGateway runs the gateway until ctx ends (nil) or its lease is lost
// (the error: bmid stops serving, since another gateway has taken over its
// disks and operations): it renews the lease, takes over dead gateways
// (svc.KeepGateway) and keeps the target in line with the placements.
func (d *Daemon) keepGateway(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.svc.KeepGateway(ctx) }()
	t := time.NewTicker(placeSync)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				d.log.Error("this gateway lost its lease: stopping (another gateway has taken over its disks)", "err", err)
			}
			return err
		case <-t.C:
			d.placed.sync(ctx, d.svc)
		}
	}
}

// joinGateway joins the state database as gateway gateway.id of
// gateway.group, with the group's portal (iscsi.portal) and this process's
// Ceph client address (for a gateway that takes it over to fence), and
// returns the exporter across gateways over local.
func (d *Daemon) joinGateway(ctx context.Context, local exporter) (*placedExporter, error) {
	c := d.cfg.Gateway
	gw, err := store.NewGateway(d.db, c.ID, c.Lease)
	if err != nil {
		return nil, err
	}
	gw.Group, gw.Portal, gw.Addresses = c.Group, d.cfg.ISCSI.Portal, c.Addresses
	if gw.CephClient, err = d.ceph.ClientAddr(); err != nil {
		return nil, err
	}
	if err := gw.Join(ctx); err != nil {
		return nil, err
	}
	log := d.log.With("component", "gateway", "gateway", c.ID)
	log.Info("joined as a gateway", "group", c.Group, "portal", gw.Portal, "addresses", gw.Addresses, "ceph_client", gw.CephClient, "lease", c.Lease.String())
	m := &member{Gateway: gw, ceph: d.ceph, log: log}
	return &placedExporter{local: local, member: m, log: log, wait: placeWait}, nil
}
