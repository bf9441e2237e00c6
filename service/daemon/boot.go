package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bmi-go/bmi/service/bootfiles"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/guard"
	"github.com/bmi-go/bmi/service/ipxe"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

// bootSpecs presents the core's boot configs to the iPXE script handler
// and the DHCP server.
type bootSpecs struct {
	svc    *core.Service
	store  *store.DB
	portal string // host of the iSCSI portal nodes log in to
	port   int
	power  *guard.PowerGate // nil: boot.require_power_on is off
	// initiator names a node's initiator (the name its ACL entry has).
	initiator func(node string) string
	// net, when set, withholds the boot configs of other projects'
	// nodes: these specs serve one per-project provisioning network.
	net *guard.NetworkGate
}

func (b bootSpecs) spec(bc core.BootConfig, t core.Target) ipxe.Spec {
	return ipxe.Spec{Node: bc.Node, Disk: bc.Disk, Portal: b.portal, Port: b.port, LUN: 0, TargetIQN: t.IQN,
		InitiatorIQN: b.initiator(bc.Node),
		CHAP:         &ipxe.CHAP{User: t.CHAPUser, Secret: logging.Secret(t.CHAPSecret)}}
}

func (b bootSpecs) BootSpec(ctx context.Context, mac net.HardwareAddr) (ipxe.Spec, error) {
	bc, t, err := b.svc.BootTarget(ctx, mac.String())
	if err != nil {
		return ipxe.Spec{}, err
	}
	if err := b.net.Allow(ctx, bc.Node, bc.Project, bc.MAC); err != nil {
		return ipxe.Spec{}, err
	}
	if err := b.power.Allow(ctx, bc.Node); err != nil {
		return ipxe.Spec{}, err
	}
	return b.spec(bc, t), nil
}

func (b bootSpecs) BootNode(ctx context.Context, mac net.HardwareAddr) (string, error) {
	bc, _, err := b.svc.BootTarget(ctx, mac.String())
	if err != nil {
		return "", err
	}
	if err := b.net.Allow(ctx, bc.Node, bc.Project, bc.MAC); err != nil {
		return "", err
	}
	return bc.Node, b.power.Allow(ctx, bc.Node)
}

// splitPortal splits "host:port" (port default 3260).
func splitPortal(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("iscsi portal %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("iscsi portal %q: bad port", addr)
	}
	return host, p, nil
}

// leases presents the state database's lease table as dhcpd.Leases.
type leases struct {
	s   *store.DB
	now func() time.Time
}

var _ dhcpd.Leases = leases{}

func toDHCP(l core.Lease) (dhcpd.Lease, error) {
	mac, err := net.ParseMAC(l.MAC)
	if err != nil {
		return dhcpd.Lease{}, fault.Errorf(fault.Internal, "lease table: MAC %q: %v", l.MAC, err)
	}
	return dhcpd.Lease{MAC: mac, IP: net.ParseIP(l.IP).To4(), Expires: l.Expires, Hostname: l.Hostname}, nil
}

func (l leases) Get(ctx context.Context, mac net.HardwareAddr) (dhcpd.Lease, error) {
	cl, err := l.s.LeaseByMAC(ctx, mac.String())
	if err != nil {
		return dhcpd.Lease{}, err
	}
	return toDHCP(cl)
}

func (l leases) Put(ctx context.Context, d dhcpd.Lease) error {
	if len(d.MAC) != 6 || d.IP.To4() == nil {
		return fault.Errorf(fault.Invalid, "lease of %v for %v: want a 6-byte MAC and an IPv4 address", d.IP, d.MAC)
	}
	return l.s.ClaimLease(ctx, core.Lease{MAC: d.MAC.String(), IP: d.IP.To4().String(), Hostname: d.Hostname, Expires: d.Expires}, l.now())
}

func (l leases) Release(ctx context.Context, mac net.HardwareAddr) error {
	return l.s.DeleteLease(ctx, mac.String())
}

func (l leases) List(ctx context.Context) ([]dhcpd.Lease, error) {
	all, err := l.s.Leases(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]dhcpd.Lease, 0, len(all))
	for _, cl := range all {
		d, err := toDHCP(cl)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// files presents legacy file mode (service/bootfiles) as core.BootFiles.
type files struct {
	w      *bootfiles.Writer
	portal string
}

var _ core.BootFiles = files{}

func (f files) Write(ctx context.Context, b core.BootFile) error {
	mac, err := net.ParseMAC(b.MAC)
	if err != nil {
		return fault.Errorf(fault.Invalid, "boot files of node %q: MAC %q: %v", b.Node, b.MAC, err)
	}
	return f.w.Write(ctx, bootfiles.Entry{Node: b.Node, MAC: mac, Image: b.Disk, Portal: f.portal, Target: b.IQN})
}

// Remove removes a node's files; without a MAC (a stray found by
// reconcile) the pxelinux file is found by the script it names.
func (f files) Remove(ctx context.Context, node, mac string) error {
	if mac == "" {
		mac = f.macOf(node)
	}
	if mac == "" {
		err := os.Remove(filepath.Join(f.w.IPXEDir, bootfiles.IPXEName(node)))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return fault.Errorf(fault.Invalid, "boot files of node %q: MAC %q: %v", node, mac, err)
	}
	return f.w.Remove(ctx, node, hw)
}

// macOf finds the pxelinux file that boots node's script.
func (f files) macOf(node string) string {
	ents, err := os.ReadDir(f.w.PXELinuxDir)
	if err != nil {
		return ""
	}
	want := bootfiles.IPXEName(node)
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "01-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(f.w.PXELinuxDir, name))
		if err == nil && strings.Contains(string(b), want) {
			return strings.ReplaceAll(strings.TrimPrefix(name, "01-"), "-", ":")
		}
	}
	return ""
}

func (f files) Nodes(context.Context) ([]string, error) {
	ents, err := os.ReadDir(f.w.IPXEDir)
	if err != nil {
		return nil, fmt.Errorf("boot files: %w", err)
	}
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".ipxe"); ok && !e.IsDir() {
			out = append(out, n)
		}
	}
	return out, nil
}
