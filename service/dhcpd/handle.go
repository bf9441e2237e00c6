package dhcpd

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/fault"
)

// handlePacket decodes one packet and returns the reply and where to send
// it, or nil when the packet is to be ignored (always with a log line).
// It never panics on any input.
func (s *Server) handlePacket(ctx context.Context, ifc *iface, raw []byte, peer net.Addr, proxy bool) ([]byte, net.Addr) {
	log := s.log().With("interface", ifc.name, "from", peer.String())
	req, err := dhcpv4.FromBytes(raw)
	if err != nil {
		s.ignored(log, "ignoring malformed dhcp packet", "bytes", len(raw), "err", err)
		return nil, nil
	}
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		s.ignored(log, "ignoring dhcp packet that is not a request", "op", req.OpCode.String())
		return nil, nil
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		s.ignored(log, "ignoring dhcp request without an ethernet MAC", "hwtype", req.HWType.String(), "hwlen", len(req.ClientHWAddr))
		return nil, nil
	}
	mac := req.ClientHWAddr
	log = log.With("mac", mac.String(), "xid", req.TransactionID.String(), "type", req.MessageType().String())
	reply := s.handle(ctx, log, ifc, req, proxy)
	if reply == nil {
		return nil, nil
	}
	if s.Observer != nil {
		s.Observer.Reply(strings.ToLower(reply.MessageType().String()))
	}
	return reply.ToBytes(), s.destination(req, reply, peer, proxy)
}

// destination is where a reply goes: back to a relay, to a client that
// has an address, else broadcast on the interface.
func (s *Server) destination(req, reply *dhcpv4.DHCPv4, peer net.Addr, proxy bool) net.Addr {
	switch {
	case proxy:
		return peer
	case !req.GatewayIPAddr.IsUnspecified() && req.GatewayIPAddr != nil:
		return &net.UDPAddr{IP: req.GatewayIPAddr, Port: dhcpv4.ServerPort}
	case !req.ClientIPAddr.IsUnspecified() && req.ClientIPAddr != nil && reply.MessageType() != dhcpv4.MessageTypeNak:
		return &net.UDPAddr{IP: req.ClientIPAddr, Port: dhcpv4.ClientPort}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}

func (s *Server) handle(ctx context.Context, log *slog.Logger, ifc *iface, req *dhcpv4.DHCPv4, proxy bool) *dhcpv4.DHCPv4 {
	mac := req.ClientHWAddr
	mt := req.MessageType()
	switch mt {
	case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline:
	default:
		s.ignored(log, "ignoring dhcp message type")
		return nil
	}
	node, err := s.Nodes.BootNode(ctx, mac)
	if errors.Is(err, fault.ErrNotFound) {
		s.ignored(log, "ignoring dhcp from a MAC without a boot config")
		return nil
	}
	if err != nil {
		log.Error("dhcp node lookup failed; not answering", "err", err)
		return nil
	}
	log = log.With("node", node)
	if mt == dhcpv4.MessageTypeDiscover {
		s.record(ctx, req, boot.StepDiscover, "")
	}
	if mt == dhcpv4.MessageTypeDiscover || mt == dhcpv4.MessageTypeRequest {
		bootMods, why := s.bootOptions(req, ifc)
		switch {
		case why == errNoArch && s.mode() == ModeServer:
			// Not a boot firmware: the node's own OS, which still needs
			// its address. No boot file.
			log.Debug("dhcp client is not a PXE client: address only")
		case why != "":
			s.ignored(log, "ignoring dhcp: "+why)
			return nil
		}
		switch {
		case s.mode() == ModeProxy:
			return s.handleProxy(ctx, log, ifc, req, bootMods, proxy)
		case mt == dhcpv4.MessageTypeDiscover:
			return s.offer(ctx, log, ifc, req, node, bootMods)
		default:
			return s.ack(ctx, log, ifc, req, node, bootMods)
		}
	}
	if s.mode() == ModeProxy {
		s.ignored(log, "ignoring dhcp message in proxy mode")
		return nil
	}
	switch mt {
	case dhcpv4.MessageTypeRelease:
		if l, err := s.Leases.Get(ctx, mac); err == nil && l.IP.Equal(req.ClientIPAddr) {
			if err := s.Leases.Release(ctx, mac); err != nil {
				log.Error("dhcp release failed", "err", err)
			} else {
				log.Info("dhcp lease released", "ip", l.IP.String())
			}
		}
	case dhcpv4.MessageTypeDecline:
		log.Warn("client declined its address: another host uses it", "ip", req.RequestedIPAddress().String())
		if err := s.Leases.Release(ctx, mac); err != nil {
			log.Error("dhcp release after decline failed", "err", err)
		}
	}
	return nil
}

// bootOptions picks the boot file for the client: the node's script URL
// for iPXE, else the iPXE binary for its architecture. why is non-empty
// when the client cannot be booted (an architecture without a binary).
func (s *Server) bootOptions(req *dhcpv4.DHCPv4, ifc *iface) ([]dhcpv4.Modifier, string) {
	mods := []dhcpv4.Modifier{dhcpv4.WithServerIP(ifc.ip)}
	if isIPXE(req) {
		url := ScriptURL(s.BaseURL, req.ClientHWAddr)
		if s.Tokens != nil {
			url += "?token=" + s.Tokens.Issue(req.ClientHWAddr)
		}
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptBootFileName(url)))
		if s.mode() == ModeServer {
			// iPXE's "no-pxedhcp" setting: do not wait for ProxyDHCP offers
			// (2 s per boot otherwise).
			mods = append(mods, dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{176, 1, 1}))
		}
		return mods, ""
	}
	archs := req.ClientArch()
	if len(archs) == 0 {
		return nil, errNoArch
	}
	switch archs[0] {
	case iana.INTEL_X86PC:
		return append(mods, dhcpv4.WithOption(dhcpv4.OptBootFileName(BIOSBinary))), ""
	case iana.EFI_X86_64, iana.EFI_BC:
		return append(mods, dhcpv4.WithOption(dhcpv4.OptBootFileName(UEFIBinary))), ""
	case iana.EFI_X86_64_HTTP:
		// UEFI HTTP boot: the URL, and option 60 "HTTPClient", without
		// which the firmware drops the offer (UEFI 2.x §24.7).
		return append(mods,
			dhcpv4.WithOption(dhcpv4.OptBootFileName(strings.TrimRight(s.BaseURL, "/")+"/boot/"+UEFIBinary)),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient"))), ""
	}
	return nil, "no iPXE binary for client architecture " + archs[0].String()
}

// The iPXE binaries PXE clients are sent (files in the TFTP root, also
// served over HTTP at /boot/<name>). UEFI clients get snponly.efi, which
// drives only the NIC the firmware loaded it from, through the firmware's
// own network driver (SNP), rather than ipxe.efi with iPXE's native
// drivers: a fifth of the size, any NIC the firmware can boot from works,
// and it came up faster in the lab (README, "UEFI nodes").
const (
	BIOSBinary = "undionly.kpxe"
	UEFIBinary = "snponly.efi"
)

// errNoArch is bootOptions' reason for a client that sends no option 93.
const errNoArch = "not a PXE client (no client architecture, option 93)"

// isIPXE reports whether the request comes from iPXE: user class "iPXE"
// (which iPXE sends raw, not RFC 3004 encoded) or iPXE's option 175.
func isIPXE(req *dhcpv4.DHCPv4) bool {
	for _, uc := range req.UserClass() {
		if uc == "iPXE" {
			return true
		}
	}
	return req.Options.Has(dhcpv4.GenericOptionCode(175))
}

// ScriptURL is the URL of the iPXE script of the node with this MAC.
func ScriptURL(base string, mac net.HardwareAddr) string {
	return strings.TrimRight(base, "/") + "/boot/" + strings.ReplaceAll(mac.String(), ":", "-") + ".ipxe"
}

func (s *Server) offer(ctx context.Context, log *slog.Logger, ifc *iface, req *dhcpv4.DHCPv4, node string, bootMods []dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	ip, err := s.allocate(ctx, req.ClientHWAddr, node, req.RequestedIPAddress())
	if err != nil {
		log.Error("no address to offer", "err", err)
		return nil
	}
	reply := s.reply(log, ifc, req, dhcpv4.MessageTypeOffer, ip, node, bootMods)
	if reply != nil {
		log.Info("dhcp offer", "ip", ip.String(), "file", reply.BootFileNameOption())
		s.record(ctx, req, boot.StepOffer, ip.String()+" "+reply.BootFileNameOption())
	}
	return reply
}

func (s *Server) ack(ctx context.Context, log *slog.Logger, ifc *iface, req *dhcpv4.DHCPv4, node string, bootMods []dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(ifc.ip) {
		s.ignored(log, "ignoring dhcp request for another server", "server", sid.String())
		return nil
	}
	want := req.RequestedIPAddress()
	if want == nil || want.IsUnspecified() {
		want = req.ClientIPAddr
	}
	mac := req.ClientHWAddr
	l, err := s.Leases.Get(ctx, mac)
	switch {
	case err == nil && l.IP.Equal(want):
	case (err == nil || errors.Is(err, fault.ErrNotFound)) && want != nil && s.inPool(want):
		l = Lease{MAC: mac, IP: want.To4()}
	case err != nil && !errors.Is(err, fault.ErrNotFound):
		log.Error("dhcp lease lookup failed; not answering", "err", err)
		return nil
	default:
		log.Info("dhcp nak: requested address is not this client's", "requested", want.String())
		return s.nak(ifc, req)
	}
	l.Hostname = node
	l.Expires = s.now().Add(s.leaseTime())
	if err := s.Leases.Put(ctx, l); err != nil {
		if errors.Is(err, fault.ErrConflict) {
			log.Info("dhcp nak: requested address is leased to another client", "requested", want.String())
			return s.nak(ifc, req)
		}
		log.Error("dhcp lease not stored; not answering", "err", err)
		return nil
	}
	reply := s.reply(log, ifc, req, dhcpv4.MessageTypeAck, l.IP, node, bootMods)
	if reply != nil {
		log.Info("dhcp ack", "ip", l.IP.String(), "file", reply.BootFileNameOption(), "lease", s.leaseTime())
		s.record(ctx, req, boot.StepAck, l.IP.String()+" "+reply.BootFileNameOption())
	}
	return reply
}

func (s *Server) nak(ifc *iface, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	r, err := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ifc.ip)))
	if err != nil {
		return nil
	}
	return r
}

// reply builds an OFFER or ACK with the address and the boot options.
func (s *Server) reply(log *slog.Logger, ifc *iface, req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, ip net.IP, node string, bootMods []dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithYourIP(ip),
		dhcpv4.WithNetmask(s.Pool.Netmask),
		dhcpv4.WithLeaseTime(uint32(s.leaseTime() / time.Second)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ifc.ip)),
	}
	if s.Pool.Router != nil {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(s.Pool.Router)))
	}
	if len(s.Pool.DNS) > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDNS(s.Pool.DNS...)))
	}
	if h := hostname(node); h != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(h)))
	}
	r, err := dhcpv4.NewReplyFromRequest(req, append(mods, bootMods...)...)
	if err != nil {
		log.Error("dhcp reply not built", "err", err)
		return nil
	}
	return r
}

// handleProxy answers in proxy mode: a PXE client's DISCOVER on port 67
// with a ProxyDHCP offer, its REQUEST on port 4011 with an ACK; neither
// carries an address.
func (s *Server) handleProxy(ctx context.Context, log *slog.Logger, ifc *iface, req *dhcpv4.DHCPv4, bootMods []dhcpv4.Modifier, onProxyPort bool) *dhcpv4.DHCPv4 {
	if !strings.HasPrefix(req.ClassIdentifier(), "PXEClient") && !isIPXE(req) {
		s.ignored(log, "ignoring dhcp from a client that is not a PXE client (proxy mode)")
		return nil
	}
	var mt dhcpv4.MessageType
	switch {
	case !onProxyPort && req.MessageType() == dhcpv4.MessageTypeDiscover:
		mt = dhcpv4.MessageTypeOffer
	case onProxyPort && req.MessageType() == dhcpv4.MessageTypeRequest:
		mt = dhcpv4.MessageTypeAck
	default:
		s.ignored(log, "ignoring dhcp message in proxy mode", "proxy_port", onProxyPort)
		return nil
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ifc.ip)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
		// PXE discovery control (option 43, sub-option 6) = 8: boot the file
		// named in this offer, no further boot server discovery.
		dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{6, 1, 8, 255}),
	}
	r, err := dhcpv4.NewReplyFromRequest(req, append(mods, bootMods...)...)
	if err != nil {
		log.Error("proxydhcp reply not built", "err", err)
		return nil
	}
	r.YourIPAddr = net.IPv4zero
	step := boot.StepOffer
	if mt == dhcpv4.MessageTypeAck {
		step = boot.StepAck
	}
	log.Info("proxydhcp "+strings.ToLower(mt.String()), "file", r.BootFileNameOption())
	s.record(ctx, req, step, "proxy "+r.BootFileNameOption())
	return r
}

func (s *Server) record(ctx context.Context, req *dhcpv4.DHCPv4, step boot.Step, detail string) {
	if s.Recorder != nil {
		s.Recorder.Record(ctx, boot.Event{MAC: req.ClientHWAddr, Step: step, Detail: detail, Client: dhcpClient(req)})
	}
}

// dhcpClient tells who sent req: iPXE, a PXE ROM (a client architecture
// without iPXE's user class) or the booted OS (neither).
func dhcpClient(req *dhcpv4.DHCPv4) string {
	switch {
	case isIPXE(req):
		return boot.ClientIPXE
	case len(req.ClientArch()) > 0:
		return boot.ClientPXE
	}
	return boot.ClientOS
}

func (s *Server) leaseTime() time.Duration {
	if s.Pool.LeaseTime <= 0 {
		return time.Hour
	}
	return s.Pool.LeaseTime
}

// hostname makes a node name fit DHCP option 12: letters, digits and
// '-', at most 63 characters.
func hostname(node string) string {
	var b strings.Builder
	for _, r := range node {
		if b.Len() == 63 {
			break
		}
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

func ipToU32(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }

func u32ToIP(v uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}

// ignored logs why a packet gets no answer, at most a few lines a second
// however many bad packets arrive.
func (s *Server) ignored(log *slog.Logger, msg string, args ...any) {
	if s.Observer != nil {
		s.Observer.Ignored(ignoreReason(msg))
	}
	ok, suppressed := s.logLimit.Allow()
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed_before", suppressed)
	}
	log.Info(msg, args...)
}
