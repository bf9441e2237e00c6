package dhcpd

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// maxPoolScan bounds how many addresses one allocation tries.
const maxPoolScan = 1 << 16

func (s *Server) inPool(ip net.IP) bool {
	v4 := ip.To4()
	if v4 == nil {
		return false
	}
	v := ipToU32(v4)
	return v >= ipToU32(s.Pool.Start) && v <= ipToU32(s.Pool.End)
}

func (s *Server) offerHold() time.Duration {
	if s.OfferHold > 0 {
		return s.OfferHold
	}
	return 30 * time.Second
}

// allocate finds the address to offer mac and reserves it for OfferHold:
// its current lease, else the address it asks for if free, else the first
// address never leased, else the first expired one.
func (s *Server) allocate(ctx context.Context, mac net.HardwareAddr, node string, requested net.IP) (net.IP, error) {
	now := s.now()
	hold := now.Add(s.offerHold())
	if l, err := s.Leases.Get(ctx, mac); err == nil && s.inPool(l.IP) {
		if l.Expires.Before(hold) {
			l.Expires, l.Hostname = hold, node
			if err := s.Leases.Put(ctx, l); err != nil {
				return nil, err
			}
		}
		return l.IP.To4(), nil
	} else if err != nil && !errors.Is(err, fault.ErrNotFound) {
		return nil, err
	}
	all, err := s.Leases.List(ctx)
	if err != nil {
		return nil, err
	}
	used := map[uint32]bool{}    // held by an active lease
	expired := map[uint32]bool{} // held by an expired lease
	for _, l := range all {
		if v4 := l.IP.To4(); v4 != nil {
			if l.Active(now) {
				used[ipToU32(v4)] = true
			} else {
				expired[ipToU32(v4)] = true
			}
		}
	}
	try := func(v uint32) (net.IP, bool, error) {
		ip := u32ToIP(v)
		err := s.Leases.Put(ctx, Lease{MAC: mac, IP: ip, Expires: hold, Hostname: node})
		if errors.Is(err, fault.ErrConflict) {
			return nil, false, nil // taken meanwhile: try the next one
		}
		return ip, err == nil, err
	}
	if requested != nil && s.inPool(requested) && !used[ipToU32(requested.To4())] {
		if ip, ok, err := try(ipToU32(requested.To4())); ok || err != nil {
			return ip, err
		}
	}
	start, end := uint64(ipToU32(s.Pool.Start)), uint64(ipToU32(s.Pool.End))
	end = min(end, start+maxPoolScan-1)
	for _, wantExpired := range []bool{false, true} {
		for v := start; v <= end; v++ {
			if used[uint32(v)] || expired[uint32(v)] != wantExpired {
				continue
			}
			if ip, ok, err := try(uint32(v)); ok || err != nil {
				return ip, err
			}
		}
	}
	return nil, fault.Errorf(fault.Unavailable, "dhcp pool %s-%s is exhausted", s.Pool.Start, s.Pool.End)
}

// MACByIP returns the MAC holding an active lease on ip (for the TFTP
// server's timeline), or an error of kind fault.NotFound.
func (s *Server) MACByIP(ctx context.Context, ip net.IP) (net.HardwareAddr, error) {
	if s.Leases == nil {
		return nil, fault.Errorf(fault.NotFound, "no lease table")
	}
	all, err := s.Leases.List(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	for _, l := range all {
		if l.IP.Equal(ip) && l.Active(now) {
			return l.MAC, nil
		}
	}
	return nil, fault.Errorf(fault.NotFound, "no active dhcp lease for %s", ip)
}
