package dhcpd

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

type nodeMap map[string]string

func (m nodeMap) BootNode(_ context.Context, mac net.HardwareAddr) (string, error) {
	if n, ok := m[mac.String()]; ok {
		return n, nil
	}
	return "", fault.Errorf(fault.NotFound, "no boot config for %s", mac)
}

var (
	known   = net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 1}
	known2  = net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 2}
	unknown = net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 9}
	srvIP   = net.IPv4(10, 199, 0, 1).To4()
	testIfc = &iface{name: "test0", ip: srvIP}
	peer    = &net.UDPAddr{IP: net.IPv4zero, Port: 68}
)

func testServer(mode Mode) (*Server, *boot.Timeline) {
	tl := boot.NewTimeline()
	return &Server{
		Interfaces: []string{"test0"},
		Mode:       mode,
		Pool: Pool{Start: net.IPv4(10, 199, 0, 100), End: net.IPv4(10, 199, 0, 102),
			Netmask: net.CIDRMask(24, 32), Router: net.IPv4(10, 199, 0, 1), LeaseTime: time.Hour},
		BaseURL:  "http://10.199.0.1:8080/",
		Nodes:    nodeMap{known.String(): "node1", known2.String(): "node two"},
		Leases:   NewMemoryLeases(),
		Log:      logging.Discard(),
		Recorder: tl,
	}, tl
}

func discover(t testing.TB, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	d, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func arch(a iana.Arch) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClientArch(a))
}

var ipxeClass = dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))

func exchange(t testing.TB, s *Server, req *dhcpv4.DHCPv4, proxy bool) *dhcpv4.DHCPv4 {
	t.Helper()
	raw, _ := s.handlePacket(context.Background(), testIfc, req.ToBytes(), peer, proxy)
	if raw == nil {
		return nil
	}
	r, err := dhcpv4.FromBytes(raw)
	if err != nil {
		t.Fatalf("reply does not decode: %v", err)
	}
	return r
}

func TestOfferBootFile(t *testing.T) {
	tests := map[string]struct {
		mac    net.HardwareAddr
		mods   []dhcpv4.Modifier
		file   string // "" = no reply
		ipxe   bool   // 175.176 expected
		vendor string
	}{
		"bios":            {known, []dhcpv4.Modifier{arch(iana.INTEL_X86PC)}, "undionly.kpxe", false, ""},
		"uefi x86-64 7":   {known, []dhcpv4.Modifier{arch(iana.EFI_X86_64)}, "snponly.efi", false, ""},
		"uefi x86-64 9":   {known, []dhcpv4.Modifier{arch(iana.EFI_BC)}, "snponly.efi", false, ""},
		"uefi http":       {known, []dhcpv4.Modifier{arch(iana.EFI_X86_64_HTTP)}, "http://10.199.0.1:8080/boot/snponly.efi", false, "HTTPClient"},
		"ipxe":            {known, []dhcpv4.Modifier{arch(iana.INTEL_X86PC), ipxeClass}, "http://10.199.0.1:8080/boot/52-54-00-77-00-01.ipxe", true, ""},
		"ipxe opt 175":    {known, []dhcpv4.Modifier{dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{19, 1, 1})}, "http://10.199.0.1:8080/boot/52-54-00-77-00-01.ipxe", true, ""},
		"unknown mac":     {unknown, []dhcpv4.Modifier{arch(iana.INTEL_X86PC)}, "", false, ""},
		"arm64 uefi":      {known, []dhcpv4.Modifier{arch(iana.EFI_ARM64)}, "", false, ""},
		"ia32 uefi":       {known, []dhcpv4.Modifier{arch(iana.EFI_IA32)}, "", false, ""},
		"arm64 http":      {known, []dhcpv4.Modifier{arch(iana.EFI_ARM64_HTTP), dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00019:UNDI:003001"))}, "", false, ""},
		"no arch no ipxe": {known, nil, "-", false, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, tl := testServer(ModeServer)
			r := exchange(t, s, discover(t, tc.mac, tc.mods...), false)
			if tc.file == "" {
				if r != nil {
					t.Fatalf("got a %s, want no answer", r.MessageType())
				}
				return
			}
			if r == nil {
				t.Fatal("no answer")
			}
			client := boot.ClientPXE
			switch {
			case tc.ipxe:
				client = boot.ClientIPXE
			case tc.file == "-": // address only, no boot file: the booted OS
				client, tc.file = boot.ClientOS, ""
			}
			if r.MessageType() != dhcpv4.MessageTypeOffer || r.BootFileNameOption() != tc.file {
				t.Fatalf("reply %s file %q, want OFFER with %q", r.MessageType(), r.BootFileNameOption(), tc.file)
			}
			if (tc.file != "" && !r.ServerIPAddr.Equal(srvIP)) || !r.ServerIdentifier().Equal(srvIP) {
				t.Errorf("siaddr %v, server id %v, want %v", r.ServerIPAddr, r.ServerIdentifier(), srvIP)
			}
			if !s.inPool(r.YourIPAddr) {
				t.Errorf("offered %v outside the pool", r.YourIPAddr)
			}
			got175 := r.Options.Get(dhcpv4.GenericOptionCode(175))
			if tc.ipxe != (string(got175) == "\xb0\x01\x01") {
				t.Errorf("option 175 = %x, want 176=1 only for iPXE: %v", got175, tc.ipxe)
			}
			if r.ClassIdentifier() != tc.vendor {
				t.Errorf("option 60 = %q, want %q", r.ClassIdentifier(), tc.vendor)
			}
			if r.HostName() != "node1" {
				t.Errorf("hostname %q", r.HostName())
			}
			if evs := tl.Events(tc.mac); len(evs) != 2 || evs[0].Step != boot.StepDiscover || evs[1].Step != boot.StepOffer {
				t.Errorf("timeline %+v, want discover and offer", evs)
			} else if evs[0].Client != client || evs[1].Client != client {
				t.Errorf("timeline clients %q, %q, want %q", evs[0].Client, evs[1].Client, client)
			}
		})
	}
}

func request(t testing.TB, mac net.HardwareAddr, ip, server net.IP, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m := []dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))}
	if server != nil {
		m = append(m, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server)))
	}
	d, err := dhcpv4.New(append(append(m, dhcpv4.WithHwAddr(mac)), mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLeaseCycle(t *testing.T) {
	s, tl := testServer(ModeServer)
	ctx := context.Background()
	offer := exchange(t, s, discover(t, known, ipxeClass), false)
	if offer == nil {
		t.Fatal("no offer")
	}
	ip := offer.YourIPAddr
	// A second DISCOVER gets the same address.
	if again := exchange(t, s, discover(t, known, ipxeClass), false); again == nil || !again.YourIPAddr.Equal(ip) {
		t.Fatalf("second offer %v, want %v", again, ip)
	}
	ack := exchange(t, s, request(t, known, ip, srvIP, ipxeClass), false)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(ip) {
		t.Fatalf("ack = %v", ack)
	}
	if ack.IPAddressLeaseTime(0) != time.Hour {
		t.Errorf("lease time %v", ack.IPAddressLeaseTime(0))
	}
	l, err := s.Leases.Get(ctx, known)
	if err != nil || !l.IP.Equal(ip) || time.Until(l.Expires) < 59*time.Minute || l.Hostname != "node1" {
		t.Fatalf("stored lease %+v, %v", l, err)
	}
	if mac, err := s.MACByIP(ctx, ip); err != nil || mac.String() != known.String() {
		t.Errorf("MACByIP = %v, %v", mac, err)
	}
	// Another node asking for that address is refused.
	if nak := exchange(t, s, request(t, known2, ip, srvIP, ipxeClass), false); nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("request of a leased address = %v, want NAK", nak)
	}
	// A request for another server is ignored.
	if r := exchange(t, s, request(t, known, ip, net.IPv4(10, 199, 0, 254), ipxeClass), false); r != nil {
		t.Fatalf("request for another server answered: %v", r)
	}
	// An address outside the pool is refused.
	if nak := exchange(t, s, request(t, known, net.IPv4(192, 0, 2, 1), srvIP, ipxeClass), false); nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("request outside the pool = %v, want NAK", nak)
	}
	// RELEASE frees it.
	rel, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithHwAddr(known), dhcpv4.WithClientIP(ip))
	exchange(t, s, rel, false)
	if _, err := s.Leases.Get(ctx, known); err == nil {
		t.Fatal("lease survived RELEASE")
	}
	steps := []boot.Step{}
	for _, ev := range tl.Events(known) {
		steps = append(steps, ev.Step)
	}
	if got := joinSteps(steps); !strings.HasPrefix(got, "dhcp-discover dhcp-offer dhcp-discover dhcp-offer dhcp-ack") {
		t.Errorf("timeline %s", got)
	}
}

func joinSteps(s []boot.Step) string {
	var out []string
	for _, x := range s {
		out = append(out, string(x))
	}
	return strings.Join(out, " ")
}

func TestPoolExhausted(t *testing.T) {
	s, _ := testServer(ModeServer)
	nodes := nodeMap{}
	for i := range 5 {
		nodes[net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}.String()] = "n"
	}
	s.Nodes = nodes
	got := map[string]bool{}
	answered := 0
	for i := range 5 {
		if r := exchange(t, s, discover(t, net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}, ipxeClass), false); r != nil {
			answered++
			got[r.YourIPAddr.String()] = true
		}
	}
	if answered != 3 || len(got) != 3 {
		t.Fatalf("%d offers with %d distinct addresses from a pool of 3, want 3 and 3", answered, len(got))
	}
	// Once the offers expire, the addresses come back.
	s.Now = func() time.Time { return time.Now().Add(time.Minute) }
	s.Leases.(*MemoryLeases).Now = s.Now
	if r := exchange(t, s, discover(t, net.HardwareAddr{2, 0, 0, 0, 0, 4}, ipxeClass), false); r == nil {
		t.Fatal("no offer after the earlier offers expired")
	}
}

func TestProxyMode(t *testing.T) {
	s, _ := testServer(ModeProxy)
	pxe := dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))
	offer := exchange(t, s, discover(t, known, arch(iana.INTEL_X86PC), pxe), false)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("proxy offer = %v", offer)
	}
	if !offer.YourIPAddr.IsUnspecified() || offer.ClassIdentifier() != "PXEClient" || offer.BootFileNameOption() != "undionly.kpxe" {
		t.Fatalf("proxy offer yiaddr %v vendor %q file %q", offer.YourIPAddr, offer.ClassIdentifier(), offer.BootFileNameOption())
	}
	if offer.Options.Has(dhcpv4.GenericOptionCode(175)) {
		t.Error("a proxy offer must not tell iPXE to skip ProxyDHCP")
	}
	// A plain DHCP client is left to the site's DHCP server.
	if r := exchange(t, s, discover(t, known, arch(iana.INTEL_X86PC)), false); r != nil {
		t.Fatalf("proxy answered a non-PXE client: %v", r)
	}
	// The ProxyDHCP REQUEST on port 4011 gets an ACK; a REQUEST on 67 is
	// the real server's business.
	req := request(t, known, net.IPv4(192, 168, 1, 50), srvIP, ipxeClass)
	req.ClientIPAddr = net.IPv4(192, 168, 1, 50)
	if r := exchange(t, s, req, false); r != nil {
		t.Fatalf("proxy answered a REQUEST on port 67: %v", r)
	}
	ack := exchange(t, s, req, true)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileNameOption() != "http://10.199.0.1:8080/boot/52-54-00-77-00-01.ipxe" {
		t.Fatalf("proxy ack = %v", ack)
	}
	if list, _ := s.Leases.List(context.Background()); len(list) != 0 {
		t.Fatalf("proxy mode stored leases: %+v", list)
	}
}

func TestMalformed(t *testing.T) {
	s, _ := testServer(ModeServer)
	good := discover(t, known, ipxeClass).ToBytes()
	reply := discover(t, known, ipxeClass)
	reply.OpCode = dhcpv4.OpcodeBootReply
	tokenRing := discover(t, known, ipxeClass)
	tokenRing.HWType = iana.HWTypeProteonTokenRing
	inform, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithHwAddr(known), ipxeClass)
	tests := map[string][]byte{
		"empty":          nil,
		"truncated":      good[:100],
		"no options":     good[:240],
		"bad cookie":     append(append([]byte{}, good[:236]...), 1, 2, 3, 4),
		"garbage":        []byte(strings.Repeat("\xff", 600)),
		"option overrun": append(append([]byte{}, good[:240]...), 53, 200, 1),
		"reply opcode":   reply.ToBytes(),
		"not ethernet":   tokenRing.ToBytes(),
		"inform":         inform.ToBytes(),
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			if r, _ := s.handlePacket(context.Background(), testIfc, raw, peer, false); r != nil {
				t.Fatalf("answered a %s packet", name)
			}
		})
	}
}

func FuzzHandlePacket(f *testing.F) {
	f.Add(discover(f, known, ipxeClass).ToBytes(), false)
	f.Add(discover(f, known, arch(iana.EFI_X86_64_HTTP)).ToBytes(), false)
	f.Add(request(f, known, net.IPv4(10, 199, 0, 100), srvIP).ToBytes(), true)
	f.Add([]byte{1, 1, 6, 0}, false)
	f.Fuzz(func(t *testing.T, raw []byte, proxy bool) {
		for _, mode := range []Mode{ModeServer, ModeProxy} {
			s, _ := testServer(mode)
			raw, dst := s.handlePacket(context.Background(), testIfc, raw, peer, proxy)
			if raw == nil {
				continue
			}
			if dst == nil {
				t.Fatal("a reply without a destination")
			}
			r, err := dhcpv4.FromBytes(raw)
			if err != nil {
				t.Fatalf("our reply does not decode: %v", err)
			}
			if r.OpCode != dhcpv4.OpcodeBootReply {
				t.Fatalf("reply with opcode %v", r.OpCode)
			}
			if mac := r.ClientHWAddr.String(); mac != known.String() && mac != known2.String() {
				t.Fatalf("answered MAC %s, which has no boot config", mac)
			}
		}
	})
}

// BenchmarkDiscoverRequest is one DISCOVER/OFFER and REQUEST/ACK exchange
// through the packet handler and the memory lease table.
func BenchmarkDiscoverRequest(b *testing.B) {
	s, _ := testServer(ModeServer)
	s.Recorder = nil
	disc := discover(b, known, ipxeClass).ToBytes()
	req := request(b, known, net.IPv4(10, 199, 0, 100), srvIP, ipxeClass).ToBytes()
	ctx := context.Background()
	for b.Loop() {
		if r, _ := s.handlePacket(ctx, testIfc, disc, peer, false); r == nil {
			b.Fatal("no offer")
		}
		if r, _ := s.handlePacket(ctx, testIfc, req, peer, false); r == nil {
			b.Fatal("no ack")
		}
	}
}

func TestDestination(t *testing.T) {
	s, _ := testServer(ModeServer)
	relay := net.IPv4(10, 1, 0, 1).To4()
	client := net.IPv4(10, 199, 0, 100).To4()
	from := &net.UDPAddr{IP: client, Port: 4011}
	tests := map[string]struct {
		giaddr, ciaddr net.IP
		mt             dhcpv4.MessageType
		proxy          bool
		want           string
	}{
		"broadcast":     {nil, nil, dhcpv4.MessageTypeOffer, false, "255.255.255.255:68"},
		"relay":         {relay, nil, dhcpv4.MessageTypeOffer, false, "10.1.0.1:67"},
		"renewing":      {nil, client, dhcpv4.MessageTypeAck, false, "10.199.0.100:68"},
		"nak broadcast": {nil, client, dhcpv4.MessageTypeNak, false, "255.255.255.255:68"},
		"proxy 4011":    {nil, client, dhcpv4.MessageTypeAck, true, "10.199.0.100:4011"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req := discover(t, known)
			if tc.giaddr != nil {
				req.GatewayIPAddr = tc.giaddr
			}
			if tc.ciaddr != nil {
				req.ClientIPAddr = tc.ciaddr
			}
			reply, _ := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(tc.mt))
			if got := s.destination(req, reply, from, tc.proxy).String(); got != tc.want {
				t.Errorf("destination = %s, want %s", got, tc.want)
			}
		})
	}
}

// countingTokens issues "tok<n>" and remembers for which MACs.
type countingTokens struct{ macs []string }

func (c *countingTokens) Issue(mac net.HardwareAddr) string {
	c.macs = append(c.macs, mac.String())
	return fmt.Sprintf("tok%d", len(c.macs))
}

func TestScriptTokenInURL(t *testing.T) {
	for _, mode := range []Mode{ModeServer, ModeProxy} {
		t.Run(string(mode), func(t *testing.T) {
			s, _ := testServer(mode)
			tok := &countingTokens{}
			s.Tokens = tok
			req := request(t, known, net.IPv4(192, 168, 1, 50), srvIP, ipxeClass, arch(iana.INTEL_X86PC))
			req.ClientIPAddr = net.IPv4(192, 168, 1, 50)
			var first *dhcpv4.DHCPv4
			if mode == ModeProxy {
				first = exchange(t, s, req, true)
			} else {
				first = exchange(t, s, discover(t, known, arch(iana.INTEL_X86PC), ipxeClass), false)
			}
			if first == nil {
				t.Fatal("no answer to iPXE")
			}
			if got, want := first.BootFileNameOption(), "http://10.199.0.1:8080/boot/52-54-00-77-00-01.ipxe?token=tok1"; got != want {
				t.Fatalf("boot file %q, want %q", got, want)
			}
			// A firmware (not iPXE) answer carries no script URL, so no token.
			_ = exchange(t, s, discover(t, known, arch(iana.INTEL_X86PC)), false)
			if len(tok.macs) != 1 || tok.macs[0] != known.String() {
				t.Fatalf("tokens issued for %v, want one for %v", tok.macs, known)
			}
		})
	}
}

// TestUnsupportedArchLogged: a UEFI client of an architecture bmid serves
// no binary for gets no answer, and the log says why (not a BIOS binary).
func TestUnsupportedArchLogged(t *testing.T) {
	for name, a := range map[string]iana.Arch{"arm64 pxe": iana.EFI_ARM64, "arm64 http": iana.EFI_ARM64_HTTP, "ia32": iana.EFI_IA32} {
		t.Run(name, func(t *testing.T) {
			s, _ := testServer(ModeServer)
			var buf bytes.Buffer
			s.Log = slog.New(slog.NewTextHandler(&buf, nil))
			if r := exchange(t, s, discover(t, known, arch(a)), false); r != nil {
				t.Fatalf("got a %s with file %q, want no answer", r.MessageType(), r.BootFileNameOption())
			}
			if want := "no iPXE binary for client architecture " + a.String(); !strings.Contains(buf.String(), want) || !strings.Contains(buf.String(), known.String()) {
				t.Fatalf("log lacks %q with the MAC:\n%s", want, buf.String())
			}
		})
	}
}
