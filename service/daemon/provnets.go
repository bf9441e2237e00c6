//go:build ceph_preview

package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/guard"
	"github.com/bmi-go/bmi/service/ipxe"
	"github.com/bmi-go/bmi/service/tftpd"
)

// provNet is one per-project provisioning network's boot services: DHCP
// on its interface, the boot HTTP listener and TFTP on its address.
type provNet struct {
	name string
	dhcp *dhcpd.Server
	http *ipxe.Server
	tftp *tftpd.Server // nil: boot.tftp.listen is empty
}

// projectNetworks is boot.networks as the core sees it.
func projectNetworks(nets []config.ProvNet) []core.ProjectNetwork {
	var out []core.ProjectNetwork
	for _, n := range nets {
		out = append(out, core.ProjectNetwork{Name: n.Name, VLAN: n.VLAN})
	}
	return out
}

// buildProvNets builds the boot services of each network of boot.networks
// (validated by config.Load): each serves only the nodes of the project
// that has it, and tells them to log in to the iSCSI portal on its own
// address. The lease table and the one-time tokens are shared.
func (d *Daemon) buildProvNets(specs bootSpecs) error {
	c := d.cfg.Boot
	_, portalPort, err := splitPortal(d.portal())
	if err != nil {
		return err
	}
	httpPort := config.Port(c.HTTPListen)
	r, err := ipxe.NewRenderer(ipxe.OptionsFromConfig(c.IPXE))
	if err != nil {
		return err
	}
	var tokens *ipxe.Tokens
	if c.IPXE.ScriptToken {
		tokens = ipxe.NewTokens(nil)
	}
	var dns []net.IP
	for _, s := range c.DHCP.DNS {
		dns = append(dns, net.ParseIP(s).To4())
	}
	for i, n := range c.Networks {
		p, err := netip.ParsePrefix(n.Address)
		if err != nil {
			return fmt.Errorf("boot.networks[%d].address: %w", i, err)
		}
		ip := net.IP(p.Addr().AsSlice())
		log := d.log.With("network", n.Name)
		sp := specs
		sp.portal, sp.port = ip.String(), portalPort
		sp.net = &guard.NetworkGate{Network: n.Name, NetworkOf: d.db.ProjectNetwork,
			Refused: func(ctx context.Context, node, project, mac, has string) {
				d.sec.Record(ctx, api.AuditEntry{Kind: "boot", Actor: mac, Source: "network " + n.Name, Action: "boot node " + node,
					Object: project, Outcome: "refused", Detail: fmt.Sprintf("the node's project boots on network %q", has)})
			}}
		base := "http://" + net.JoinHostPort(ip.String(), httpPort)
		dh := &dhcpd.Server{Interfaces: []string{n.Interface}, Mode: dhcpd.ModeServer, ServerIP: ip, BaseURL: base,
			Pool: dhcpd.Pool{Start: net.ParseIP(n.RangeStart).To4(), End: net.ParseIP(n.RangeEnd).To4(),
				Netmask: net.CIDRMask(p.Bits(), 32), DNS: dns, LeaseTime: c.DHCP.LeaseTime},
			Nodes: sp, Leases: leases{s: d.db, now: time.Now}, Log: log.With("component", "dhcp"), Recorder: d.boots,
			Faults: boot.FaultsFromConfig(c.Faults.DHCP), RouterAdvertisements: c.DHCP.IPv6RA, Observer: d.metrics.DHCP,
			// The gateways of a group share the network's address: the
			// one holding it serves the network's boots.
			OnlyHolding: d.cfg.Gateway.ID != ""}
		if tokens != nil {
			dh.Tokens = tokens
		}
		if err := dh.Check(); err != nil {
			return fmt.Errorf("boot.networks[%d]: %w", i, err)
		}
		h := &ipxe.Handler{Specs: sp, Renderer: r, Log: log.With("component", "ipxe"), Recorder: d.boots,
			Faults: boot.FaultsFromConfig(c.Faults.HTTP), RequireLease: c.IPXE.RequireLease, Clients: dh, Tokens: tokens,
			Refused: d.scriptRefused}
		if st, err := os.Stat(c.TFTP.Root); c.TFTP.Root != "" && err == nil && st.IsDir() {
			h.Files = os.DirFS(c.TFTP.Root)
		}
		pn := provNet{name: n.Name, dhcp: dh,
			http: &ipxe.Server{Addr: net.JoinHostPort(ip.String(), httpPort), Handler: d.metrics.HTTP.Wrap(h), Log: log.With("component", "ipxe")}}
		if c.TFTP.Listen != "" {
			tc := c
			tc.TFTP.Listen = net.JoinHostPort(ip.String(), config.Port(c.TFTP.Listen))
			pn.tftp = tftpd.NewFromConfig(tc, log.With("component", "tftp"), dh, d.boots)
			pn.tftp.Observer = d.metrics.TFTP
		}
		d.provNets = append(d.provNets, pn)
	}
	return nil
}

// scriptRefused records a refused iPXE script in the audit log.
func (d *Daemon) scriptRefused(ctx context.Context, remote string, mac net.HardwareAddr, why string) {
	d.sec.Record(ctx, api.AuditEntry{Kind: "boot", Actor: mac.String(), Source: remote, Action: "get boot script",
		Outcome: "refused", Detail: why})
}

// portal is the iSCSI portal of the configuration (iscsi.portal, or the
// first listen address).
func (d *Daemon) portal() string {
	if d.cfg.ISCSI.Portal != "" {
		return d.cfg.ISCSI.Portal
	}
	return d.cfg.ISCSI.Listen[0]
}
