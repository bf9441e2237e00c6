// Package netns builds and removes the lab's network: one network
// namespace bmilab-<name> holding one bridge per VLAN, one tap per virtual
// machine NIC (the bridge it is enslaved to is the emulated switch port's
// VLAN membership), and a veth pair through which the host reaches the
// lab's API on addresses of the lab's own.
//
// Why a bridge per VLAN and not one VLAN-filtering bridge: the kernels
// this project runs on (CI included) are built without
// CONFIG_BRIDGE_VLAN_FILTERING and CONFIG_VLAN_8021Q ("ip link add ... type
// bridge vlan_filtering 1" answers "Operation not supported"). An access
// port on VLAN v of a VLAN-aware switch and a tap enslaved to bridge
// "vlan<v>" isolate traffic the same way; trunk (tagged) ports are not
// emulated.
//
// Nothing in the namespace is routed anywhere: the namespace has no default
// route and no forwarding, the bridge has no uplink, and the veth's host end
// carries only a /30 of the lab's own (IPv6 disabled on both ends), so no
// packet a lab process sends can leave the namespace except to the host end
// of that veth.
package netns

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/service/fault"
)

// Prefix starts the name of every lab namespace; `make clean` removes any
// namespace whose name starts with it.
const Prefix = "bmilab-"

// BridgeName returns the name of VLAN vlan's bridge inside the namespace.
func BridgeName(vlan int) string { return "vlan" + strconv.Itoa(vlan) }

// APILink is the name of the lab end of the host veth, inside the namespace.
const APILink = "api0"

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,10}$`)

// ValidName checks a lab name: a lower-case letter, then up to 10 lower-case
// letters or digits (the host veth "bml-<name>" must fit in 15 bytes).
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("lab name %q: want a lower-case letter followed by up to 10 lower-case letters or digits: %w", name, fault.ErrInvalid)
	}
	return nil
}

// Config describes a lab network. Zero fields get the defaults of Defaults.
type Config struct {
	// Name of the lab; the namespace is bmilab-<Name>.
	Name string
	// Bridge4 is the bridge's IPv4 address and prefix inside the namespace
	// (the provisioning network on which bmid serves DHCP, TFTP and iSCSI).
	Bridge4 netip.Prefix
	// Bridge6 is a ULA address on the bridge: it only exists so that the
	// boot service can send IPv6 router advertisements, without which
	// iPXE waits ~13 s per boot for router discovery.
	Bridge6 netip.Prefix
	// ProvisioningVLAN is the VLAN whose bridge carries the Bridge4 and
	// Bridge6 addresses: a NIC is on the provisioning network while its
	// tap is a member of this VLAN.
	ProvisioningVLAN int
	// HostLink is the /30 of the host veth: the host end gets the first
	// address, the lab end (APILink) the second.
	HostLink netip.Prefix
}

// Defaults fills the zero fields of c. HostLink defaults to a /30 in
// 169.254.0.0/16 chosen from the lab name (never 169.254.169.0/24).
func (c Config) Defaults() Config {
	if !c.Bridge4.IsValid() {
		c.Bridge4 = netip.MustParsePrefix("10.77.0.1/24")
	}
	if !c.Bridge6.IsValid() {
		c.Bridge6 = netip.MustParsePrefix("fd77:0:0:77::1/64")
	}
	if c.ProvisioningVLAN == 0 {
		c.ProvisioningVLAN = 100
	}
	if !c.HostLink.IsValid() {
		h := fnv.New32a()
		h.Write([]byte(c.Name))
		v := h.Sum32()
		third := byte(1 + v%253) // 1..253
		if third == 169 {
			third = 170
		}
		fourth := byte((v >> 8) % 64 * 4)
		c.HostLink = netip.PrefixFrom(netip.AddrFrom4([4]byte{169, 254, third, fourth}), 30)
	}
	return c
}

// Net is one lab network.
type Net struct {
	cfg Config
	log *slog.Logger
}

// New returns the handle of the lab network cfg describes; it changes
// nothing (see Up).
func New(cfg Config, log *slog.Logger) (*Net, error) {
	if err := ValidName(cfg.Name); err != nil {
		return nil, err
	}
	cfg = cfg.Defaults()
	if cfg.HostLink.Bits() != 30 || !cfg.HostLink.Addr().Is4() {
		return nil, fmt.Errorf("lab %q: host link %s: want an IPv4 /30: %w", cfg.Name, cfg.HostLink, fault.ErrInvalid)
	}
	if cfg.ProvisioningVLAN < 1 || cfg.ProvisioningVLAN > 4094 {
		return nil, fmt.Errorf("lab %q: provisioning VLAN %d: want 1..4094: %w", cfg.Name, cfg.ProvisioningVLAN, fault.ErrInvalid)
	}
	return &Net{cfg: cfg, log: log}, nil
}

// Config returns the configuration with defaults filled in.
func (n *Net) Config() Config { return n.cfg }

// Namespace returns the namespace name, bmilab-<name>.
func (n *Net) Namespace() string { return Prefix + n.cfg.Name }

// HostIf returns the name of the host end of the veth.
func (n *Net) HostIf() string { return "bml-" + n.cfg.Name }

// HostAddr is the host end's address; LabAddr is the lab end's, where the
// lab's services listen for the host.
func (n *Net) HostAddr() netip.Addr { return n.cfg.HostLink.Masked().Addr().Next() }

// LabAddr is the address of the lab end of the host veth (see HostAddr).
func (n *Net) LabAddr() netip.Addr { return n.HostAddr().Next() }

// Exists reports whether the lab's namespace exists.
func (n *Net) Exists() bool {
	_, err := os.Stat("/run/netns/" + n.Namespace())
	return err == nil
}

func (n *Net) ip(ctx context.Context, args ...string) (string, error) {
	return proc.Run(ctx, append([]string{"ip", "-n", n.Namespace()}, args...)...)
}

func (n *Net) sysctl(ctx context.Context, key, val string) error {
	_, err := proc.Run(ctx, "ip", "netns", "exec", n.Namespace(), "sysctl", "-q", "-w", key+"="+val)
	return err
}

// Up creates whatever of the network is missing: namespace, provisioning
// bridge, host veth. It is idempotent; a name used by another lab's host link or an
// address already routed on the host is refused (ErrConflict).
func (n *Net) Up(ctx context.Context) error {
	if err := n.checkHostFree(ctx); err != nil {
		return err
	}
	ns := n.Namespace()
	if !n.Exists() {
		if _, err := proc.Run(ctx, "ip", "netns", "add", ns); err != nil {
			return fmt.Errorf("lab %q: create namespace: %w", n.cfg.Name, err)
		}
		n.log.Info("namespace created", "namespace", ns)
	}
	if _, err := n.ip(ctx, "link", "set", "lo", "up"); err != nil {
		return fmt.Errorf("lab %q: %w", n.cfg.Name, err)
	}
	// No forwarding, ever (a fresh namespace starts with it off; make sure).
	for _, kv := range [][2]string{{"net.ipv4.ip_forward", "0"}, {"net.ipv6.conf.all.forwarding", "0"}} {
		if err := n.sysctl(ctx, kv[0], kv[1]); err != nil {
			return fmt.Errorf("lab %q: %w", n.cfg.Name, err)
		}
	}
	if err := n.bridgeSelf(ctx); err != nil {
		return err
	}
	if err := n.hostLink(ctx); err != nil {
		return err
	}
	return nil
}

// ProvisioningBridge is the bridge of the provisioning VLAN, where bmid
// serves DHCP, TFTP and iSCSI.
func (n *Net) ProvisioningBridge() string { return BridgeName(n.cfg.ProvisioningVLAN) }

// ensureBridge creates VLAN vlan's bridge if it is missing and brings it up.
func (n *Net) ensureBridge(ctx context.Context, vlan int) error {
	br := BridgeName(vlan)
	if _, err := n.ip(ctx, "link", "show", br); err != nil {
		// No STP, no forward delay: a port must forward at once, or iPXE's
		// first DHCPDISCOVERs are lost while the port is learning.
		if _, err := n.ip(ctx, "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"); err != nil {
			return fmt.Errorf("lab %q: VLAN %d: %w", n.cfg.Name, vlan, err)
		}
	}
	if _, err := n.ip(ctx, "link", "set", br, "up"); err != nil {
		return fmt.Errorf("lab %q: VLAN %d: %w", n.cfg.Name, vlan, err)
	}
	return nil
}

// bridgeSelf creates the provisioning bridge with its addresses.
func (n *Net) bridgeSelf(ctx context.Context) error {
	if err := n.ensureBridge(ctx, n.cfg.ProvisioningVLAN); err != nil {
		return err
	}
	br := n.ProvisioningBridge()
	addrs, _ := n.ip(ctx, "-o", "addr", "show", "dev", br)
	cmds := [][]string{}
	if !strings.Contains(addrs, " "+n.cfg.Bridge4.String()+" ") {
		cmds = append(cmds, []string{"ip", "-n", n.Namespace(), "addr", "add", n.cfg.Bridge4.String(), "dev", br})
	}
	if !strings.Contains(addrs, " "+n.cfg.Bridge6.String()+" ") {
		cmds = append(cmds, []string{"ip", "-n", n.Namespace(), "addr", "add", n.cfg.Bridge6.String(), "dev", br, "nodad"})
	}
	for _, c := range cmds {
		if _, err := proc.Run(ctx, c...); err != nil {
			return fmt.Errorf("lab %q: bridge: %w", n.cfg.Name, err)
		}
	}
	return nil
}

// hostLink creates the veth pair host <-> lab with the HostLink addresses.
func (n *Net) hostLink(ctx context.Context) error {
	h := n.HostIf()
	if _, err := proc.Run(ctx, "ip", "link", "show", h); err != nil {
		if _, err := proc.Run(ctx, "ip", "link", "add", h, "type", "veth", "peer", "name", APILink, "netns", n.Namespace()); err != nil {
			return fmt.Errorf("lab %q: host link: %w", n.cfg.Name, err)
		}
	}
	bits := strconv.Itoa(n.cfg.HostLink.Bits())
	// IPv6 off on both ends: no router solicitations, MLD or DAD towards
	// the host. Then the /30 addresses.
	if _, err := proc.Run(ctx, "sysctl", "-q", "-w", "net.ipv6.conf."+h+".disable_ipv6=1"); err != nil {
		return fmt.Errorf("lab %q: host link: %w", n.cfg.Name, err)
	}
	if err := n.sysctl(ctx, "net.ipv6.conf."+APILink+".disable_ipv6", "1"); err != nil {
		return fmt.Errorf("lab %q: host link: %w", n.cfg.Name, err)
	}
	have, _ := proc.Run(ctx, "ip", "-o", "addr", "show", "dev", h)
	if !strings.Contains(have, " "+n.HostAddr().String()+"/") {
		if _, err := proc.Run(ctx, "ip", "addr", "add", n.HostAddr().String()+"/"+bits, "dev", h); err != nil {
			return fmt.Errorf("lab %q: host link: %w", n.cfg.Name, err)
		}
	}
	have, _ = n.ip(ctx, "-o", "addr", "show", "dev", APILink)
	if !strings.Contains(have, " "+n.LabAddr().String()+"/") {
		if _, err := n.ip(ctx, "addr", "add", n.LabAddr().String()+"/"+bits, "dev", APILink); err != nil {
			return fmt.Errorf("lab %q: host link: %w", n.cfg.Name, err)
		}
	}
	for _, c := range [][]string{{"ip", "link", "set", h, "up"}, {"ip", "-n", n.Namespace(), "link", "set", APILink, "up"}} {
		if _, err := proc.Run(ctx, c...); err != nil {
			return fmt.Errorf("lab %q: host link: %w", n.cfg.Name, err)
		}
	}
	return nil
}

// checkHostFree refuses a host link whose addresses the host already routes
// through an interface other than this lab's own veth.
func (n *Net) checkHostFree(ctx context.Context) error {
	out, err := proc.Run(ctx, "ip", "-o", "-4", "route", "show", "match", n.LabAddr().String())
	if err != nil {
		return fmt.Errorf("lab %q: check host routes: %w", n.cfg.Name, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		if i := indexOf(f, "dev"); i >= 0 && i+1 < len(f) && f[i+1] != n.HostIf() {
			return fmt.Errorf("lab %q: host link %s is already routed via %s on this host (choose another lab name or host link): %w",
				n.cfg.Name, n.cfg.HostLink, f[i+1], fault.ErrConflict)
		}
	}
	return nil
}

func indexOf(f []string, s string) int {
	for i, x := range f {
		if x == s {
			return i
		}
	}
	return -1
}

// Pids returns the processes running in the lab's namespace.
func (n *Net) Pids(ctx context.Context) ([]int, error) {
	if !n.Exists() {
		return nil, nil
	}
	out, err := proc.Run(ctx, "ip", "netns", "pids", n.Namespace())
	if err != nil {
		return nil, fmt.Errorf("lab %q: %w", n.cfg.Name, err)
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// Down removes the lab network: every process still running in the
// namespace is stopped (SIGTERM, then SIGKILL; `ip netns del` alone would
// leave them running and keep the namespace alive), then the namespace
// with its bridge and taps, and the host veth. It works on a half-built or
// already removed network.
func (n *Net) Down(ctx context.Context) error {
	var errs []error
	pids, err := n.Pids(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	if len(pids) > 0 {
		n.log.Info("stopping processes left in the namespace", "namespace", n.Namespace(), "pids", pids)
		if err := proc.StopPids(ctx, pids, 5*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("lab %q: %w", n.cfg.Name, err))
		}
	}
	if err := n.downFoothold(ctx); err != nil {
		errs = append(errs, err)
	}
	if n.Exists() {
		if _, err := proc.Run(ctx, "ip", "netns", "del", n.Namespace()); err != nil {
			errs = append(errs, fmt.Errorf("lab %q: delete namespace: %w", n.cfg.Name, err))
		}
	}
	// Deleting the namespace deletes the lab end and so the pair, but
	// asynchronously: wait for the host end to go, and delete it when it
	// stays (a half-built run can leave it without a namespace).
	for range 20 {
		if _, err := proc.Run(ctx, "ip", "link", "show", n.HostIf()); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := proc.Run(ctx, "ip", "link", "show", n.HostIf()); err == nil {
		if _, err := proc.Run(ctx, "ip", "link", "del", n.HostIf()); err != nil {
			if _, err2 := proc.Run(ctx, "ip", "link", "show", n.HostIf()); err2 == nil {
				errs = append(errs, fmt.Errorf("lab %q: delete host link: %w", n.cfg.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// AddNetwork makes VLAN vlan's bridge, up, with this host's address addr
// on it and a ULA (fd77:0:0:<vlan>::1/64, for IPv6 router advertisements):
// one more provisioning network for bmid to serve (per-project
// provisioning networks). It is idempotent.
func (n *Net) AddNetwork(ctx context.Context, vlan int, addr netip.Prefix) error {
	if vlan < 1 || vlan > 4094 || !addr.Addr().Is4() {
		return fmt.Errorf("lab %q: network VLAN %d address %s: want 1..4094 and an IPv4 prefix: %w", n.cfg.Name, vlan, addr, fault.ErrInvalid)
	}
	if err := n.ensureBridge(ctx, vlan); err != nil {
		return err
	}
	br := BridgeName(vlan)
	addrs, _ := n.ip(ctx, "-o", "addr", "show", "dev", br)
	ula := fmt.Sprintf("fd77:0:0:%x::1/64", vlan)
	if !strings.Contains(addrs, " "+addr.String()+" ") {
		if _, err := n.ip(ctx, "addr", "add", addr.String(), "dev", br); err != nil {
			return fmt.Errorf("lab %q: VLAN %d: %w", n.cfg.Name, vlan, err)
		}
	}
	if !strings.Contains(addrs, " "+ula+" ") {
		if _, err := n.ip(ctx, "addr", "add", ula, "dev", br, "nodad"); err != nil {
			return fmt.Errorf("lab %q: VLAN %d: %w", n.cfg.Name, vlan, err)
		}
	}
	return nil
}

// FootholdNamespace is the namespace of the lab's foothold on the
// provisioning network (AddFoothold).
func (n *Net) FootholdNamespace() string { return n.Namespace() + "-fh" }

// AddFoothold makes the lab's foothold: a namespace of its own
// (FootholdNamespace) with a veth on VLAN vlan's bridge and addr on it,
// a machine on that provisioning network that is no node (the UAT's
// @attacker scenarios run their clients there). It is idempotent; Down
// removes it.
func (n *Net) AddFoothold(ctx context.Context, vlan int, addr netip.Prefix) error {
	if err := n.ensureBridge(ctx, vlan); err != nil {
		return err
	}
	fh := n.FootholdNamespace()
	if _, err := proc.Run(ctx, "ip", "netns", "pids", fh); err != nil {
		if _, err := proc.Run(ctx, "ip", "netns", "add", fh); err != nil {
			return fmt.Errorf("lab %q: foothold namespace: %w", n.cfg.Name, err)
		}
	}
	// The lab end is named vlan<N>fh: one of the lab's own links, not a
	// port (ValidPort refuses vlan*).
	end := BridgeName(vlan) + "fh"
	if _, err := n.ip(ctx, "link", "show", end); err != nil {
		if _, err := n.ip(ctx, "link", "add", end, "type", "veth", "peer", "name", "eth0", "netns", fh); err != nil {
			return fmt.Errorf("lab %q: foothold link: %w", n.cfg.Name, err)
		}
	}
	steps := [][]string{
		{"ip", "-n", n.Namespace(), "link", "set", end, "master", BridgeName(vlan)},
		{"ip", "-n", n.Namespace(), "link", "set", end, "up"},
		{"ip", "-n", fh, "link", "set", "lo", "up"},
		{"ip", "-n", fh, "link", "set", "eth0", "up"},
	}
	if out, _ := proc.Run(ctx, "ip", "-n", fh, "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, " "+addr.String()+" ") {
		steps = append(steps, []string{"ip", "-n", fh, "addr", "add", addr.String(), "dev", "eth0"})
	}
	for _, s := range steps {
		if _, err := proc.Run(ctx, s...); err != nil {
			return fmt.Errorf("lab %q: foothold: %w", n.cfg.Name, err)
		}
	}
	return nil
}

// downFoothold deletes the foothold namespace, if there is one.
func (n *Net) downFoothold(ctx context.Context) error {
	fh := n.FootholdNamespace()
	if _, err := proc.Run(ctx, "ip", "netns", "pids", fh); err != nil {
		return nil
	}
	if _, err := proc.Run(ctx, "ip", "netns", "del", fh); err != nil {
		return fmt.Errorf("lab %q: delete foothold namespace: %w", n.cfg.Name, err)
	}
	return nil
}

// AddBridge makes VLAN vlan's bridge, up, with addr on it when addr is
// valid (no IPv6 address: a bridge whose hosts are in other namespaces,
// such as a several-gateway lab's). It is idempotent.
func (n *Net) AddBridge(ctx context.Context, vlan int, addr netip.Prefix) error {
	if vlan < 1 || vlan > 4094 {
		return fmt.Errorf("lab %q: bridge VLAN %d: want 1..4094: %w", n.cfg.Name, vlan, fault.ErrInvalid)
	}
	if err := n.ensureBridge(ctx, vlan); err != nil {
		return err
	}
	if !addr.IsValid() {
		return nil
	}
	br := BridgeName(vlan)
	addrs, _ := n.ip(ctx, "-o", "addr", "show", "dev", br)
	if !strings.Contains(addrs, " "+addr.String()+" ") {
		if _, err := n.ip(ctx, "addr", "add", addr.String(), "dev", br); err != nil {
			return fmt.Errorf("lab %q: VLAN %d: %w", n.cfg.Name, vlan, err)
		}
	}
	return nil
}

// DelAddr removes addr from the namespace's device dev; an address not
// there is not an error.
func (n *Net) DelAddr(ctx context.Context, dev string, addr netip.Prefix) error {
	addrs, err := n.ip(ctx, "-o", "addr", "show", "dev", dev)
	if err != nil || !strings.Contains(addrs, " "+addr.String()+" ") {
		return nil
	}
	if _, err := n.ip(ctx, "addr", "del", addr.String(), "dev", dev); err != nil {
		return fmt.Errorf("lab %q: %s: %w", n.cfg.Name, dev, err)
	}
	return nil
}
