package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/lab/netns"
	"github.com/bmi-go/bmi/service/fault"
)

// A lab with several gateways (`up --gateways N`, N > 1) runs each bmid
// in a network namespace of its own, bmilab-<name>-g<i>, attached by veth
// to the provisioning bridge, to each project network's bridge and to a
// storage bridge that carries Ceph, the API and VRRP (nodes are never on
// it). The addresses a node uses float between the gateways' namespaces,
// moved by keepalived (VRRP): the group's portal, the network's own
// address x.x.x.1 that a one-gateway lab gives the lab namespace, and
// each gateway's own address x.x.x.2<i>, where logins for its disks are
// redirected (it moves to a survivor, since iPXE's iBFT records it and
// open-iscsi reconnects to it). A keepalived whose bmid stops answering
// /healthz (killed, or paused by SIGSTOP) drops the addresses it holds.
// The lab namespace keeps x.x.x.9 on each network, so the suite's iSCSI
// checks run there as on a one-gateway lab.
const (
	// StorageVLAN is the storage bridge's VLAN (vlan4000).
	StorageVLAN = 4000
	// MaxGateways bounds --gateways.
	MaxGateways = 4
	// GatewayLease is the lab gateways' lease (gateway.lease): short, so
	// that a failover takes seconds.
	GatewayLease = 5 * time.Second
	// GatewayGroup is the lab gateways' group.
	GatewayGroup = "lab"
	// LabHost is the last byte of the lab namespace's own address on each
	// network of a several-gateway lab (x.x.x.9): the gateways hold .1,
	// .1<i> and .2<i>, DHCP hands out .100 to .199.
	LabHost = 9
)

// StorageNet is the storage network; the lab namespace is its first host
// (Ceph's mon and OSD bind there) and gateway i has .1<i>.
var StorageNet = netip.MustParsePrefix("10.77.250.1/24")

// Gateway is one of a several-gateway lab's bmid, as services.json
// records it.
type Gateway struct {
	// ID is its gateway.id (g1, g2, ...).
	ID string `json:"id"`
	// Bmid and Keepalived are its processes.
	Bmid       proc.ID `json:"bmid"`
	Keepalived proc.ID `json:"keepalived"`
	// Binary is the bmid binary it runs, which its next start runs again
	// (a rolling upgrade changes it one gateway at a time); empty in a
	// services.json written before it was recorded: the lab's BmidBinary.
	Binary string `json:"binary,omitempty"`
}

// gatewayNets are the networks a gateway is attached to: the provisioning
// network and the project networks (VLAN, the network's prefix with its
// floating address .1).
func (l *Lab) gatewayNets() []ProjectNetwork {
	nets := []ProjectNetwork{{Name: "provisioning", VLAN: l.ProvisioningVLAN, Addr: netip.MustParsePrefix(l.Bridge4)}}
	return append(nets, ProjectNetworks...)
}

// at returns the address last on prefix p's network.
func at(p netip.Prefix, last byte) netip.Addr {
	b := p.Masked().Addr().As4()
	return netip.AddrFrom4([4]byte{b[0], b[1], b[2], last})
}

// gatewayNS is gateway i's namespace (1-based).
func (l *Lab) gatewayNS(i int) string { return fmt.Sprintf("%s-g%d", l.Namespace, i) }

// GatewayID is gateway i's gateway.id (1-based).
func GatewayID(i int) string { return fmt.Sprintf("g%d", i) }

// GatewayAPI is where gateway i's API listens (on the storage network).
func GatewayAPI(i int) string { return fmt.Sprintf("%s:%d", at(StorageNet, byte(10+i)), APIPort) }

// GatewayPortals are gateway i's own portal addresses, one per network
// (gateway.addresses).
func (l *Lab) GatewayPortals(i int) []string {
	var out []string
	for _, n := range l.gatewayNets() {
		out = append(out, fmt.Sprintf("%s:3260", at(n.Addr, byte(20+i))))
	}
	return out
}

// cephMonIP is where the lab's Ceph binds: the namespace's loopback with
// one bmid, the storage network when gateways in other namespaces use it.
func (l *Lab) cephMonIP() string {
	if l.Gateways > 1 {
		return StorageNet.Addr().String()
	}
	return ""
}

// gatewayNetUp builds the network of a several-gateway lab: the storage
// bridge in the lab namespace, the floating addresses taken off the lab
// namespace (the gateways hold them now), and one namespace per gateway
// with a veth on each bridge ("vlan<v>" inside, as the lab namespace
// names its bridges, so that bmid's configuration is the same) and the
// route to hil-mock. Idempotent.
func (l *Lab) gatewayNetUp(ctx context.Context) error {
	if err := l.net.AddBridge(ctx, StorageVLAN, StorageNet); err != nil {
		return err
	}
	for _, n := range l.gatewayNets() {
		if err := l.net.AddBridge(ctx, n.VLAN, netip.Prefix{}); err != nil {
			return err
		}
		// The network's own address floats between the gateways; the lab
		// namespace keeps an address of its own there, from which
		// whatever runs in it (the suite's iSCSI checks, an operator's
		// iscsiadm) reaches the portals as a host on that network would.
		if err := l.net.DelAddr(ctx, netns.BridgeName(n.VLAN), n.Addr); err != nil {
			return err
		}
		if err := l.net.AddBridge(ctx, n.VLAN, netip.PrefixFrom(at(n.Addr, LabHost), n.Addr.Bits())); err != nil {
			return err
		}
	}
	for i := 1; i <= l.Gateways; i++ {
		ns := l.gatewayNS(i)
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			if _, err := proc.Run(ctx, "ip", "netns", "add", ns); err != nil {
				return fmt.Errorf("lab %q: gateway namespace: %w", l.Name, err)
			}
		}
		sysctls := [][2]string{{"net.ipv4.ip_forward", "0"}, {"net.ipv6.conf.all.forwarding", "0"},
			// bmid binds the floating addresses (boot HTTP, TFTP) whether
			// or not this gateway holds them now.
			{"net.ipv4.ip_nonlocal_bind", "1"}}
		for _, kv := range sysctls {
			if _, err := proc.Run(ctx, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", kv[0]+"="+kv[1]); err != nil {
				return fmt.Errorf("lab %q: gateway %d: %w", l.Name, i, err)
			}
		}
		if _, err := proc.Run(ctx, "ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
		links := append([]ProjectNetwork{{VLAN: StorageVLAN, Addr: StorageNet}}, l.gatewayNets()...)
		for _, n := range links {
			outer := fmt.Sprintf("g%d-v%d", i, n.VLAN)
			inner := netns.BridgeName(n.VLAN)
			if _, err := proc.Run(ctx, "ip", "-n", l.Namespace, "link", "show", outer); err != nil {
				if _, err := proc.Run(ctx, "ip", "-n", l.Namespace, "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns); err != nil {
					return fmt.Errorf("lab %q: gateway %d on VLAN %d: %w", l.Name, i, n.VLAN, err)
				}
			}
			base := netip.PrefixFrom(at(n.Addr, byte(10+i)), n.Addr.Bits())
			have, _ := proc.Run(ctx, "ip", "-n", ns, "-o", "addr", "show", "dev", inner)
			cmds := [][]string{{"ip", "-n", l.Namespace, "link", "set", outer, "master", netns.BridgeName(n.VLAN)},
				{"ip", "-n", l.Namespace, "link", "set", outer, "up"}, {"ip", "-n", ns, "link", "set", inner, "up"}}
			if !strings.Contains(have, " "+base.String()+" ") {
				cmds = append(cmds, []string{"ip", "-n", ns, "addr", "add", base.String(), "dev", inner})
			}
			for _, c := range cmds {
				if _, err := proc.Run(ctx, c...); err != nil {
					return fmt.Errorf("lab %q: gateway %d on VLAN %d: %w", l.Name, i, n.VLAN, err)
				}
			}
		}
		// hil-mock listens on the lab end of the host link, in the lab
		// namespace: reach it across the storage bridge.
		if _, err := proc.Run(ctx, "ip", "-n", ns, "route", "replace", l.LabAddr+"/32", "via", StorageNet.Addr().String()); err != nil {
			return fmt.Errorf("lab %q: gateway %d: route to hil-mock: %w", l.Name, i, err)
		}
	}
	return nil
}

// gatewayNetDown removes the gateways' namespaces (their veths go with
// them), after stopping whatever still runs in them.
func (l *Lab) gatewayNetDown(ctx context.Context) error {
	for i := 1; i <= MaxGateways; i++ {
		ns := l.gatewayNS(i)
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		out, _ := proc.Run(ctx, "ip", "netns", "pids", ns)
		var pids []int
		for _, f := range strings.Fields(out) {
			var p int
			if _, err := fmt.Sscan(f, &p); err == nil {
				pids = append(pids, p)
			}
		}
		if err := proc.StopPids(ctx, pids, 5*time.Second); err != nil {
			return fmt.Errorf("lab %q: gateway %d: %w", l.Name, i, err)
		}
		if _, err := proc.Run(ctx, "ip", "netns", "del", ns); err != nil {
			return fmt.Errorf("lab %q: gateway %d: %w", l.Name, i, err)
		}
	}
	return nil
}

// keepalivedConf is gateway i's keepalived.conf: one VRRP instance for
// the group's floating addresses (gateway 1 first) and one for each
// gateway's own addresses (its own gateway first), unicast on the storage
// bridge, each tracking the local bmid's /healthz (a bmid that does not
// answer within a second twice running, killed or paused, has its
// keepalived drop every address it holds). Not /readyz: that fails while
// HIL or Ceph is down, and every gateway would drop its addresses at once,
// cutting the nodes off their disks for an outage they would ride through.
// bmid serves /healthz only once it has re-exported its disks.
func (l *Lab) keepalivedConf(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by bmi-lab up: gateway %d of lab %s
global_defs {
  router_id %s-g%d
  enable_script_security
  script_user root
  vrrp_garp_master_delay 1
  vrrp_garp_master_repeat 3
  vrrp_garp_master_refresh 10
}
vrrp_script chk_bmid {
  script "/usr/bin/curl -sf -m 1 -o /dev/null http://%s/healthz"
  interval 1
  timeout 2
  fall 2
  rise 2
}
`, i, l.Name, l.Name, i, GatewayAPI(i))
	self := at(StorageNet, byte(10+i))
	instance := func(name string, vrid, prio int, vips []string) {
		fmt.Fprintf(&b, "vrrp_instance %s {\n  state BACKUP\n  interface %s\n  virtual_router_id %d\n  priority %d\n  advert_int 1\n",
			name, netns.BridgeName(StorageVLAN), vrid, prio)
		fmt.Fprintf(&b, "  unicast_src_ip %s\n  unicast_peer {\n", self)
		for j := 1; j <= l.Gateways; j++ {
			if j != i {
				fmt.Fprintf(&b, "    %s\n", at(StorageNet, byte(10+j)))
			}
		}
		b.WriteString("  }\n  virtual_ipaddress {\n")
		for _, v := range vips {
			b.WriteString("    " + v + "\n")
		}
		b.WriteString("  }\n  track_script {\n    chk_bmid\n  }\n}\n")
	}
	// Priorities: the first choice 200, then by distance (gateway i after
	// the first choice j is 200 - 10 * ((i - j) mod N)).
	prio := func(first int) int { return 200 - 10*((i-first+l.Gateways)%l.Gateways) }
	var group []string
	for _, n := range l.gatewayNets() {
		group = append(group, fmt.Sprintf("%s dev %s", n.Addr, netns.BridgeName(n.VLAN)))
	}
	instance("group", 50, prio(1), group)
	for j := 1; j <= l.Gateways; j++ {
		var own []string
		for _, n := range l.gatewayNets() {
			own = append(own, fmt.Sprintf("%s/%d dev %s", at(n.Addr, byte(20+j)), n.Addr.Bits(), netns.BridgeName(n.VLAN)))
		}
		instance(fmt.Sprintf("own_g%d", j), 50+j, prio(j), own)
	}
	return b.String()
}

// startGateway starts gateway i's bmid (binary, with BootFaults if
// faults) and keepalived in its namespace.
func (l *Lab) startGateway(ctx context.Context, i int, binary string, faults bool) (Gateway, error) {
	g := Gateway{ID: GatewayID(i), Binary: binary}
	var err error
	if g.Bmid, err = l.startGatewayBmid(i, binary, faults); err != nil {
		return g, err
	}
	if g.Keepalived, err = l.startKeepalived(i); err != nil {
		_ = g.Bmid.Kill(ctx)
		return g, err
	}
	return g, nil
}

// startGatewayBmid starts binary as gateway i's bmid in its namespace,
// with its bmid-g<i>.yaml (and BootFaults if faults).
func (l *Lab) startGatewayBmid(i int, binary string, faults bool) (proc.ID, error) {
	return proc.StartDaemon(l.gatewayBmidArgv(i, binary, faults), nil, l.gatewayLog(i))
}

// gatewayBmidArgv is startGatewayBmid's command line.
func (l *Lab) gatewayBmidArgv(i int, binary string, faults bool) []string {
	argv := []string{"ip", "netns", "exec", l.gatewayNS(i), binary, "serve", "--config", l.gatewayConfPath(i)}
	if faults {
		for _, kv := range BootFaults {
			argv = append(argv, "--set", kv)
		}
	}
	return argv
}

// startKeepalived writes gateway i's keepalived.conf and starts its
// keepalived in its namespace.
func (l *Lab) startKeepalived(i int) (proc.ID, error) {
	conf := filepath.Join(l.Dir, fmt.Sprintf("keepalived-g%d.conf", i))
	if err := os.WriteFile(conf, []byte(l.keepalivedConf(i)), 0o644); err != nil {
		return proc.ID{}, err
	}
	run := filepath.Join(l.Dir, "bmid")
	argv := []string{"ip", "netns", "exec", l.gatewayNS(i), "keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp",
		"--use-file", conf, "--pid", filepath.Join(run, fmt.Sprintf("keepalived-g%d.pid", i)),
		"--vrrp_pid", filepath.Join(run, fmt.Sprintf("vrrp-g%d.pid", i))}
	return proc.StartDaemon(argv, nil, filepath.Join(l.Dir, fmt.Sprintf("keepalived-g%d.log", i)))
}

func (l *Lab) gatewayConfPath(i int) string {
	return filepath.Join(l.Dir, fmt.Sprintf("bmid-g%d.yaml", i))
}

func (l *Lab) gatewayLog(i int) string { return filepath.Join(l.Dir, fmt.Sprintf("bmid-g%d.log", i)) }

// GatewayLog is gateway id's bmid log.
func (l *Lab) GatewayLog(id string) string {
	var i int
	fmt.Sscanf(id, "g%d", &i)
	return l.gatewayLog(i)
}

// GatewayList returns the lab's gateways as services.json records them
// (none with one bmid).
func (l *Lab) GatewayList() []Gateway { return l.loadServices().Gateways }

// GatewayAction is what SignalGateway does to a gateway's bmid.
type GatewayAction string

// The faults of a gateway.
const (
	// GatewayKill is a crash: SIGKILL.
	GatewayKill GatewayAction = "kill"
	// GatewayPause stops the process (SIGSTOP): a hung or cut-off
	// gateway, which must not write again once it is taken over.
	GatewayPause GatewayAction = "pause"
	// GatewayResume resumes a paused one (SIGCONT).
	GatewayResume GatewayAction = "resume"
)

// SignalGateway kills, pauses or resumes gateway id's bmid (its
// keepalived runs on: it sees bmid stop answering and drops its
// addresses).
func (l *Lab) SignalGateway(ctx context.Context, id string, a GatewayAction) error {
	for _, g := range l.loadServices().Gateways {
		if g.ID != id {
			continue
		}
		if !g.Bmid.Alive() {
			return fmt.Errorf("lab %q: gateway %s's bmid is not running: %w", l.Name, id, fault.ErrConflict)
		}
		switch a {
		case GatewayKill:
			return g.Bmid.Kill(ctx)
		case GatewayPause:
			return syscall.Kill(g.Bmid.Pid, syscall.SIGSTOP)
		case GatewayResume:
			return syscall.Kill(g.Bmid.Pid, syscall.SIGCONT)
		}
		return fmt.Errorf("gateway action %q: want kill, pause or resume: %w", a, fault.ErrInvalid)
	}
	return fmt.Errorf("lab %q has no gateway %q: %w", l.Name, id, fault.ErrNotFound)
}

// GatewayAlive reports whether gateway id's bmid runs.
func (l *Lab) GatewayAlive(id string) bool {
	for _, g := range l.loadServices().Gateways {
		if g.ID == id {
			return g.Bmid.Alive()
		}
	}
	return false
}
