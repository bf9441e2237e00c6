package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
)

// hilNameRe is what BMI accepts as the name of a HIL network it creates.
var hilNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// networkChecks validates boot.networks (per-project provisioning
// networks) and the keys it replaces.
func (c Config) networkChecks() []check {
	nets := c.Boot.Networks
	if len(nets) == 0 {
		return nil
	}
	const why = "must be empty when boot.networks is set (each network sets its own)"
	out := []check{
		{"boot.interfaces", emptyWhen(len(c.Boot.Interfaces) == 0, why)},
		{"boot.base_url", emptyWhen(c.Boot.BaseURL == "", why)},
		{"boot.dhcp.range_start", emptyWhen(c.Boot.DHCP.RangeStart == "", why)},
		{"boot.dhcp.range_end", emptyWhen(c.Boot.DHCP.RangeEnd == "", why)},
		{"boot.dhcp.netmask", emptyWhen(c.Boot.DHCP.Netmask == "", why)},
		{"boot.dhcp.server_ip", emptyWhen(c.Boot.DHCP.ServerIP == "", why)},
		{"boot.dhcp.router", emptyWhen(c.Boot.DHCP.Router == "", "must be empty when boot.networks is set: a router of one network is none of the others'")},
		{"hil.provisioning_network", emptyWhen(c.HIL.ProvisioningNetwork == "",
			"must be empty when boot.networks is set: each project gets a network of its own")},
		{"hil.user", emptyWhen(c.HIL.User != "", "required when boot.networks is set: BMI's HIL account (a HIL administrator) creates the projects' networks")},
		{"boot.dhcp.mode", emptyWhen(c.Boot.DHCP.Mode == "server", "must be server when boot.networks is set")},
		{"boot.http_listen", emptyWhen(c.Boot.HTTPListen != "", "required when boot.networks is set: its port is each network's boot HTTP port")},
	}
	names, vlans, ifaces := map[string]int{}, map[int]int{}, map[string]int{}
	var prefixes []netip.Prefix
	for i, n := range nets {
		key := func(k string) string { return fmt.Sprintf("boot.networks[%d].%s", i, k) }
		out = append(out,
			check{key("name"), match(n.Name, hilNameRe, "a HIL network name of letters, digits, '.', '-' or '_'")},
			check{key("vlan"), between(int64(n.VLAN), 1, 4094)},
			check{key("interface"), match(n.Interface, ifaceRe, "an interface name such as eth1.101")},
			check{key("address"), hostPrefix(n.Address)},
			check{key("range_start"), ipv4(n.RangeStart, true)},
			check{key("range_end"), ipv4(n.RangeEnd, true)},
			check{key("range_end"), ordered(n.RangeStart, n.RangeEnd)},
		)
		out = append(out,
			check{key("name"), firstUse(names, n.Name, i, "name")},
			check{key("vlan"), firstUse(vlans, n.VLAN, i, "vlan")},
			check{key("interface"), firstUse(ifaces, n.Interface, i, "interface")},
		)
		p, err := netip.ParsePrefix(n.Address)
		if err != nil {
			continue
		}
		for j, q := range prefixes {
			if p.Overlaps(q) {
				out = append(out, check{key("address"), fmt.Sprintf("subnet %s overlaps boot.networks[%d]'s %s", p.Masked(), j, q.Masked())})
			}
		}
		prefixes = append(prefixes, p)
		a, err1 := netip.ParseAddr(n.RangeStart)
		b, err2 := netip.ParseAddr(n.RangeEnd)
		if err1 == nil && err2 == nil && (!p.Contains(a) || !p.Contains(b) || !p.Addr().Less(a) && !b.Less(p.Addr())) {
			out = append(out, check{key("range_start"), fmt.Sprintf("range %s-%s must lie in %s and leave out this host's address %s",
				a, b, p.Masked(), p.Addr())})
		}
		out = append(out, check{key("address"), c.portalListens(p.Addr())})
	}
	return out
}

// portalListens checks that the iSCSI target listens where the nodes of
// a network are told to log in: the network's address, port of the portal.
func (c Config) portalListens(addr netip.Addr) string {
	portal := c.ISCSI.Portal
	if portal == "" && len(c.ISCSI.Listen) > 0 {
		portal = c.ISCSI.Listen[0]
	}
	_, port, err := net.SplitHostPort(portal)
	if err != nil {
		return ""
	}
	for _, l := range c.ISCSI.Listen {
		h, p, err := net.SplitHostPort(l)
		if err != nil || p != port {
			continue
		}
		if ip := net.ParseIP(h); h == "" || ip != nil && (ip.IsUnspecified() || ip.Equal(net.IP(addr.AsSlice()))) {
			return ""
		}
	}
	return fmt.Sprintf("the iSCSI target does not listen on %s: add it to iscsi.listen (or listen on 0.0.0.0:%s)",
		net.JoinHostPort(addr.String(), port), port)
}

// hostPrefix accepts an IPv4 host address with its prefix length.
func hostPrefix(s string) string {
	if s == "" {
		return "required"
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 30 {
		return fmt.Sprintf("invalid value %q: want this host's IPv4 address with a prefix length of 8 to 30, such as 10.20.101.1/24", s)
	}
	return ""
}

// firstUse refuses a value an earlier network already has.
func firstUse[K comparable](seen map[K]int, v K, i int, what string) string {
	if j, ok := seen[v]; ok {
		return fmt.Sprintf("%s %v is also boot.networks[%d]'s: each network needs its own", what, v, j)
	}
	seen[v] = i
	return ""
}

func emptyWhen(ok bool, problem string) string {
	if ok {
		return ""
	}
	return problem
}

// Port returns the port of a host:port ("" if it has none).
func Port(hostport string) string {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return ""
	}
	if _, err := strconv.Atoi(p); err != nil {
		return ""
	}
	return p
}
