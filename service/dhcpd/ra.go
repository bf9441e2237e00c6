package dhcpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// raResponder answers IPv6 Router Solicitations on the boot interfaces
// with a bare Router Advertisement: router lifetime 0 (not a default
// router), no prefixes, no M or O flag. iPXE's "Configuring (net0 ...)"
// waits for IPv6 router discovery as well as for DHCPv4 and gives up only
// after about 13 s; any such RA ends that wait at once. It configures
// nothing on the clients.
type raResponder struct {
	conn    *icmp.PacketConn
	pc      *ipv6.PacketConn
	ifaces  map[int]string
	log     *slog.Logger
	message []byte
}

var allRouters = &net.IPAddr{IP: net.ParseIP("ff02::2")}

// openRA opens the ICMPv6 socket and joins ff02::2 on each interface.
func openRA(names []string, log *slog.Logger) (*raResponder, error) {
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, fmt.Errorf("ipv6 router advertisements: %w", err)
	}
	r := &raResponder{conn: c, pc: c.IPv6PacketConn(), ifaces: map[int]string{}, log: log}
	for _, name := range names {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("ipv6 router advertisements on %s: %w", name, err)
		}
		if err := r.pc.JoinGroup(ifi, allRouters); err != nil {
			c.Close()
			return nil, fmt.Errorf("ipv6 router advertisements on %s: join ff02::2: %w", name, err)
		}
		r.ifaces[ifi.Index] = name
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	if err := r.pc.SetICMPFilter(&f); err != nil {
		c.Close()
		return nil, fmt.Errorf("ipv6 router advertisements: icmp filter: %w", err)
	}
	if err := r.pc.SetControlMessage(ipv6.FlagInterface, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("ipv6 router advertisements: control messages: %w", err)
	}
	// Body: hop limit 64, flags 0, router lifetime 0, reachable time 0,
	// retrans timer 0. The kernel fills in the checksum.
	r.message, err = (&icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement,
		Body: &icmp.RawBody{Data: []byte{64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}}).Marshal(nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	return r, nil
}

// serve answers until the socket is closed.
func (r *raResponder) serve(ctx context.Context) {
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := r.pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				r.log.Error("ipv6 router solicitation read failed; no more advertisements", "err", err)
			}
			return
		}
		if cm == nil || n < 4 || buf[0] != byte(ipv6.ICMPTypeRouterSolicitation) {
			continue
		}
		name, ok := r.ifaces[cm.IfIndex]
		if !ok {
			continue // not a boot interface
		}
		// Answer the solicitor directly (its link-local address), as
		// RFC 4861 allows, so other hosts on the link see nothing.
		dst := src
		if a, ok := src.(*net.IPAddr); !ok || a.IP.IsUnspecified() {
			dst = &net.IPAddr{IP: net.IPv6linklocalallnodes}
		}
		wcm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: cm.IfIndex}
		if _, err := r.pc.WriteTo(r.message, wcm, dst); err != nil {
			r.log.Warn("ipv6 router advertisement not sent", "interface", name, "to", src.String(), "err", err)
			continue
		}
		r.log.Debug("ipv6 router advertisement sent", "interface", name, "to", src.String())
	}
}

func (r *raResponder) close() { r.conn.Close() }
