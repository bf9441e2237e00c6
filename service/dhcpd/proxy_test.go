package dhcpd_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/dhcpd"
)

// TestRealDHCPFaults: with every answer dropped udhcpc gets no lease;
// with answers delayed it still gets one.
func TestRealDHCPFaults(t *testing.T) {
	t.Run("drop all", func(t *testing.T) {
		l := startLabWith(t, func(d *dhcpd.Server) { d.Faults = boot.Faults{DropRate: 1} })
		l.setMAC(t, nodeMAC)
		if env := l.udhcpcTries(t, 2, "-x", optBIOS); env != nil {
			t.Fatalf("got a lease with every answer dropped: %v", env)
		}
		if evs := l.tl.Events(nodeMAC); len(evs) != 0 {
			t.Errorf("dropped packets reached the timeline: %+v", evs)
		}
	})
	t.Run("delay", func(t *testing.T) {
		l := startLabWith(t, func(d *dhcpd.Server) { d.Faults = boot.Faults{Delay: 300 * time.Millisecond} })
		l.setMAC(t, nodeMAC)
		if env := l.udhcpc(t, "-x", optBIOS); env == nil || env["bootfile"] != "undionly.kpxe" {
			t.Fatalf("no lease with delayed answers: %v", env)
		}
	})
}

// TestProxyModeNetns runs proxy mode across the veth pair: a PXE
// DISCOVER broadcast on port 67 gets a ProxyDHCP offer without an
// address, and the ProxyDHCP REQUEST to port 4011 gets the boot file.
func TestProxyModeNetns(t *testing.T) {
	l := startLabWith(t, func(d *dhcpd.Server) { d.Mode = dhcpd.ModeProxy })
	l.setMAC(t, nodeMAC)
	clientIP := l.p.AddClientIP(t)
	var bc, uc *net.UDPConn
	if err := l.p.Client.Do(func() (err error) {
		if bc, err = server4.NewIPv4UDPConn(l.p.Client.Iface, &net.UDPAddr{Port: dhcpv4.ClientPort}); err != nil {
			return err
		}
		uc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: clientIP, Port: 0})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	defer uc.Close()
	pxeMods := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
	}
	disc, err := dhcpv4.NewDiscovery(nodeMAC, pxeMods...)
	if err != nil {
		t.Fatal(err)
	}
	offer := roundTrip(t, bc, disc, &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort})
	if offer.MessageType() != dhcpv4.MessageTypeOffer || !offer.YourIPAddr.IsUnspecified() ||
		offer.ClassIdentifier() != "PXEClient" || offer.BootFileNameOption() != "undionly.kpxe" {
		t.Fatalf("proxy offer: type %s yiaddr %v vendor %q file %q", offer.MessageType(), offer.YourIPAddr, offer.ClassIdentifier(), offer.BootFileNameOption())
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, append(pxeMods, dhcpv4.WithClientIP(clientIP),
		dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")))...)
	if err != nil {
		t.Fatal(err)
	}
	ack := roundTrip(t, uc, req, &net.UDPAddr{IP: l.p.ServerIP, Port: 4011})
	if ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileNameOption() != "http://10.199.0.1:8080/boot/52-54-00-77-00-01.ipxe" {
		t.Fatalf("proxy ack: type %s file %q", ack.MessageType(), ack.BootFileNameOption())
	}
	if all, _ := l.leases.List(context.Background()); len(all) != 0 {
		t.Errorf("proxy mode stored leases: %+v", all)
	}
}

func roundTrip(t *testing.T, c *net.UDPConn, m *dhcpv4.DHCPv4, to *net.UDPAddr) *dhcpv4.DHCPv4 {
	t.Helper()
	// The server may still be opening its sockets: resend for a while.
	buf := make([]byte, 1500)
	for range 10 {
		if _, err := c.WriteTo(m.ToBytes(), to); err != nil {
			t.Fatalf("send to %s: %v", to, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			r, err := dhcpv4.FromBytes(buf[:n])
			if err == nil && r.OpCode == dhcpv4.OpcodeBootReply && r.TransactionID == m.TransactionID {
				return r
			}
		}
	}
	t.Fatalf("no answer from %s", to)
	return nil
}
