package dhcpd_test

import (
	"net"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/bmi-go/bmi/service/dhcpd"
)

// TestRouterAdvertisement sends a Router Solicitation from the client
// namespace and expects the bare advertisement back: router lifetime 0,
// no M/O flags, hop limit 255.
func TestRouterAdvertisement(t *testing.T) {
	l := startLabWith(t, func(d *dhcpd.Server) { d.RouterAdvertisements = true })
	var c *icmp.PacketConn
	var ifi *net.Interface
	if err := l.p.Client.Do(func() (err error) {
		if ifi, err = net.InterfaceByName(l.p.Client.Iface); err != nil {
			return err
		}
		c, err = icmp.ListenPacket("ip6:ipv6-icmp", "::")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc := c.IPv6PacketConn()
	if err := pc.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		t.Fatal(err)
	}
	rs, err := (&icmp.Message{Type: ipv6.ICMPTypeRouterSolicitation, Body: &icmp.RawBody{Data: make([]byte, 4)}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	// The link-local addresses may still be tentative (DAD): retry.
	for range 20 {
		wcm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: ifi.Index}
		if _, err := pc.WriteTo(rs, wcm, &net.IPAddr{IP: net.ParseIP("ff02::2"), Zone: l.p.Client.Iface}); err != nil {
			t.Logf("send RS: %v", err)
			time.Sleep(500 * time.Millisecond)
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, cm, _, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			if n < 16 || buf[0] != byte(ipv6.ICMPTypeRouterAdvertisement) {
				continue
			}
			// Body after type, code, checksum: hop limit, flags, lifetime(2).
			if flags, lifetime := buf[5], int(buf[6])<<8|int(buf[7]); flags != 0 || lifetime != 0 {
				t.Fatalf("advertisement flags %#x lifetime %d, want 0 and 0", flags, lifetime)
			}
			if cm == nil || cm.HopLimit != 255 {
				t.Fatalf("advertisement hop limit %v, want 255", cm)
			}
			if n != 16 {
				t.Errorf("advertisement of %d bytes carries options, want a bare one (16 bytes)", n)
			}
			return
		}
	}
	t.Fatal("no router advertisement in answer to 20 solicitations")
}
