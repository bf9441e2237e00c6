// Package dhcpd is BMI's DHCPv4 server for network boot
// (github.com/insomniacslk/dhcp). It answers only on the configured
// interfaces and only MACs that BMI has a boot config for; everything
// else is ignored with a log line.
//
// A PXE ROM's first request gets the iPXE binary for its architecture
// (option 93): BIOS undionly.kpxe over TFTP, x86-64 UEFI snponly.efi over
// TFTP, x86-64 UEFI HTTP boot the URL of snponly.efi (and option 60
// "HTTPClient"). Any other architecture (ARM64, IA32, ...) gets no answer
// and a log line: bmid serves no binary for it, and a BIOS binary would
// only crash it. A request from iPXE (user class
// "iPXE") gets the URL of the node's iPXE script, and iPXE option 175.176 =
// 1 so it does not wait for ProxyDHCP offers.
//
// In server mode it hands out addresses from a pool, keeping leases in a
// Leases table. In proxy mode another DHCP server hands out addresses and
// this one only answers PXE clients with boot options (port 67) and their
// ProxyDHCP requests (port 4011).
//
// Optionally it also answers IPv6 Router Solicitations with an
// advertisement that configures nothing, only to end iPXE's wait for IPv6
// router discovery.
package dhcpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/fault"
)

// Mode is how the server takes part in DHCP.
type Mode string

// The modes.
const (
	// ModeServer hands out addresses from Pool.
	ModeServer Mode = "server"
	// ModeProxy only adds boot options; another server hands out addresses.
	ModeProxy Mode = "proxy"
)

// Nodes tells which MACs BMI boots: the name of the node whose boot NIC
// has mac, or an error of kind fault.NotFound when BMI has no boot config
// for it.
type Nodes interface {
	BootNode(ctx context.Context, mac net.HardwareAddr) (string, error)
}

// Tokens issues the one-time script tokens put into the script URLs of
// answers to iPXE (*ipxe.Tokens).
type Tokens interface {
	Issue(mac net.HardwareAddr) string
}

// Recorder takes the steps of a node's boot timeline.
type Recorder interface {
	Record(ctx context.Context, ev boot.Event)
}

// Pool is the address pool of server mode.
type Pool struct {
	// Start and End bound the addresses handed out (both included).
	Start, End net.IP
	// Netmask is the subnet mask handed to clients.
	Netmask net.IPMask
	// Router is the default gateway; nil for none.
	Router net.IP
	// DNS are the name servers.
	DNS []net.IP
	// LeaseTime is the lease duration (default 1 h).
	LeaseTime time.Duration
}

// Server is the DHCP server. Set the fields, then call Serve.
type Server struct {
	// Interfaces are the interfaces to answer on. Required.
	Interfaces []string
	// Mode is ModeServer (default) or ModeProxy.
	Mode Mode
	// ServerIP is this server's address on the boot network (server
	// identifier, TFTP next-server); nil takes each interface's first IPv4
	// address.
	ServerIP net.IP
	// Pool is the address pool (server mode).
	Pool Pool
	// BaseURL is the HTTP base nodes fetch scripts and UEFI HTTP binaries
	// from: <BaseURL>/boot/<mac>.ipxe and <BaseURL>/boot/snponly.efi.
	BaseURL string
	// Tokens, when set, adds ?token=<one-time token> to every script URL.
	Tokens Tokens
	// Nodes says which MACs to answer. Required.
	Nodes Nodes
	// Leases is the lease table (server mode). Required in server mode.
	Leases Leases
	// Log receives a line per answer and per ignored packet.
	Log *slog.Logger
	// Recorder, when set, records DISCOVER, OFFER and ACK per node.
	Recorder Recorder
	// Observer, when set, hears every answer and every ignored packet
	// (metrics).
	Observer Observer
	// Faults drops or delays answers (tests and the lab only).
	Faults boot.Faults
	// Port and ProxyPort are the UDP ports (default 67 and 4011); tests
	// change them.
	Port, ProxyPort int
	// RouterAdvertisements answers IPv6 Router Solicitations on the
	// interfaces with a bare advertisement that configures nothing, which
	// spares every iPXE boot a 13 s wait for IPv6 router discovery.
	RouterAdvertisements bool
	// OfferHold is how long an offered address stays reserved for the
	// client's REQUEST (default 30 s).
	OfferHold time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// OnlyHolding answers only while the interface's server address is
	// an address of this host: the gateways of a group share a network's
	// address, which keepalived moves, and the one holding it serves the
	// network's boot traffic (DHCP here, then TFTP and HTTP at that
	// address), so that a node's boot goes to one gateway throughout.
	OnlyHolding bool

	sem      chan struct{}
	logLimit boot.LogLimiter
	hold     holding
}

// iface is one interface the server answers on.
type iface struct {
	name string
	ip   net.IP // server identifier / next-server
}

// maxInFlight bounds the packets handled at once.
const maxInFlight = 64

// Check validates the configuration without opening anything.
func (s *Server) Check() error {
	if len(s.Interfaces) == 0 {
		return fault.Errorf(fault.Invalid, "dhcp: no interfaces configured")
	}
	if s.Nodes == nil {
		return fault.Errorf(fault.Invalid, "dhcp: no node lookup configured")
	}
	if s.BaseURL == "" {
		return fault.Errorf(fault.Invalid, "dhcp: no base URL for iPXE scripts")
	}
	if err := s.Faults.Validate(); err != nil {
		return fault.Errorf(fault.Invalid, "dhcp faults: %v", err)
	}
	switch s.mode() {
	case ModeProxy:
		return nil
	case ModeServer:
	default:
		return fault.Errorf(fault.Invalid, "dhcp mode %q: want server or proxy", s.Mode)
	}
	if s.Leases == nil {
		return fault.Errorf(fault.Invalid, "dhcp server mode needs a lease table")
	}
	start, end := s.Pool.Start.To4(), s.Pool.End.To4()
	if start == nil || end == nil || ipToU32(start) > ipToU32(end) {
		return fault.Errorf(fault.Invalid, "dhcp pool %v-%v: need two IPv4 addresses, start <= end", s.Pool.Start, s.Pool.End)
	}
	if ones, bits := s.Pool.Netmask.Size(); bits != 32 || ones == 0 {
		return fault.Errorf(fault.Invalid, "dhcp pool netmask %v is not an IPv4 netmask", s.Pool.Netmask)
	}
	return nil
}

func (s *Server) mode() Mode {
	if s.Mode == "" {
		return ModeServer
	}
	return s.Mode
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Serve opens a socket bound to each interface (and, in proxy mode, a
// second one on port 4011), answers until ctx is done, and returns nil.
// All sockets are opened before Serve returns or starts answering.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Check(); err != nil {
		return err
	}
	log := s.log()
	s.Faults.Announce(log, "dhcp")
	s.sem = make(chan struct{}, maxInFlight)
	port, proxyPort := s.Port, s.ProxyPort
	if port == 0 {
		port = 67
	}
	if proxyPort == 0 {
		proxyPort = 4011
	}
	type listener struct {
		ifc   *iface
		conn  net.PacketConn
		proxy bool
	}
	var ls []listener
	closeAll := func() {
		for _, l := range ls {
			l.conn.Close()
		}
	}
	for _, name := range s.Interfaces {
		ifc, err := s.lookupIface(name)
		if err != nil {
			closeAll()
			return err
		}
		conn, err := server4.NewIPv4UDPConn(name, &net.UDPAddr{Port: port})
		if err != nil {
			closeAll()
			return fmt.Errorf("dhcp on %s port %d: %w", name, port, err)
		}
		ls = append(ls, listener{ifc, conn, false})
		if s.mode() == ModeProxy {
			pc, err := server4.NewIPv4UDPConn(name, &net.UDPAddr{Port: proxyPort})
			if err != nil {
				closeAll()
				return fmt.Errorf("proxydhcp on %s port %d: %w", name, proxyPort, err)
			}
			ls = append(ls, listener{ifc, pc, true})
		}
		log.Info("dhcp listening", "interface", name, "server_ip", ifc.ip.String(), "mode", string(s.mode()))
	}
	var ra *raResponder
	if s.RouterAdvertisements {
		var err error
		if ra, err = openRA(s.Interfaces, log); err != nil {
			closeAll()
			return err
		}
		log.Info("answering ipv6 router solicitations", "interfaces", s.Interfaces)
	}
	var wg sync.WaitGroup
	if ra != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ra.serve(ctx)
		}()
	}
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.readLoop(ctx, l.ifc, l.conn, l.proxy)
		}()
	}
	<-ctx.Done()
	closeAll()
	if ra != nil {
		ra.close()
	}
	wg.Wait()
	// Let answers in flight finish.
	for range maxInFlight {
		s.sem <- struct{}{}
	}
	log.Info("dhcp stopped")
	return nil
}

func (s *Server) lookupIface(name string) (*iface, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("dhcp interface %s: %w", name, err)
	}
	if s.ServerIP != nil {
		return &iface{name: name, ip: s.ServerIP.To4()}, nil
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("dhcp interface %s addresses: %w", name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return &iface{name: name, ip: n.IP.To4()}, nil
		}
	}
	return nil, fault.Errorf(fault.Invalid, "dhcp interface %s has no IPv4 address (set the server address)", name)
}

func (s *Server) readLoop(ctx context.Context, ifc *iface, conn net.PacketConn, proxy bool) {
	log := s.log().With("interface", ifc.name)
	for {
		buf := make([]byte, 1500)
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				log.Error("dhcp read failed; interface no longer served", "err", err)
			}
			return
		}
		s.sem <- struct{}{}
		go func() {
			defer func() { <-s.sem }()
			defer func() {
				// A packet must never take the daemon down, whatever a
				// decoder below does with it.
				if r := recover(); r != nil {
					log.Error("dhcp packet handling panicked; packet ignored", "from", peer.String(), "panic", fmt.Sprint(r))
				}
			}()
			if s.OnlyHolding && !s.hold.holds(ifc.ip) {
				return // another gateway holds the address and answers
			}
			if s.Faults.Drop() {
				log.Warn("fault injection: dropping dhcp packet", "from", peer.String())
				return
			}
			reply, dst := s.handlePacket(ctx, ifc, buf[:n], peer, proxy)
			if reply == nil {
				return
			}
			if s.Faults.Wait(ctx) {
				return
			}
			if _, err := conn.WriteTo(reply, dst); err != nil {
				log.Warn("dhcp reply not sent", "to", dst.String(), "err", err)
			}
		}()
	}
}
