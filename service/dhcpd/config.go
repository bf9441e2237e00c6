package dhcpd

import (
	"log/slog"
	"net"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/fault"
)

// NewFromConfig builds the server from the boot section of bmid's
// configuration (already validated by config.Load) and the consumer-side
// pieces; rec may be nil. An invalid setting gives an error of kind
// fault.Invalid naming the key.
func NewFromConfig(c config.Boot, nodes Nodes, leases Leases, log *slog.Logger, rec Recorder) (*Server, error) {
	s := &Server{
		Interfaces:           c.Interfaces,
		Mode:                 Mode(c.DHCP.Mode),
		BaseURL:              c.BaseURL,
		Nodes:                nodes,
		Leases:               leases,
		Log:                  log,
		Recorder:             rec,
		Faults:               boot.FaultsFromConfig(c.Faults.DHCP),
		RouterAdvertisements: c.DHCP.IPv6RA,
	}
	var err error
	if s.ServerIP, err = optionalIPv4("boot.dhcp.server_ip", c.DHCP.ServerIP); err != nil {
		return nil, err
	}
	if s.Mode == ModeServer {
		if s.Pool.Start, err = optionalIPv4("boot.dhcp.range_start", c.DHCP.RangeStart); err != nil {
			return nil, err
		}
		if s.Pool.End, err = optionalIPv4("boot.dhcp.range_end", c.DHCP.RangeEnd); err != nil {
			return nil, err
		}
		ones, err := config.ParseNetmask(c.DHCP.Netmask)
		if err != nil {
			return nil, fault.Errorf(fault.Invalid, "boot.dhcp.netmask: %v", err)
		}
		s.Pool.Netmask = net.CIDRMask(ones, 32)
	}
	if s.Pool.Router, err = optionalIPv4("boot.dhcp.router", c.DHCP.Router); err != nil {
		return nil, err
	}
	for _, d := range c.DHCP.DNS {
		ip, err := optionalIPv4("boot.dhcp.dns", d)
		if err != nil {
			return nil, err
		}
		s.Pool.DNS = append(s.Pool.DNS, ip)
	}
	s.Pool.LeaseTime = c.DHCP.LeaseTime
	if err := s.Check(); err != nil {
		return nil, err
	}
	return s, nil
}

func optionalIPv4(key, v string) (net.IP, error) {
	if v == "" {
		return nil, nil
	}
	ip := net.ParseIP(v).To4()
	if ip == nil {
		return nil, fault.Errorf(fault.Invalid, "%s: %q is not an IPv4 address", key, v)
	}
	return ip, nil
}
