package dhcpd

import (
	"context"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// Lease binds an IPv4 address to a MAC until Expires.
type Lease struct {
	// MAC is the client's hardware address.
	MAC net.HardwareAddr
	// IP is the leased IPv4 address.
	IP net.IP
	// Expires is when the lease ends; an offer holds an address for a
	// short time, an ACK for the lease time.
	Expires time.Time
	// Hostname is the node name the lease was handed out for.
	Hostname string
}

// Active reports whether the lease has not expired at now.
func (l Lease) Active(now time.Time) bool { return now.Before(l.Expires) }

// Leases is the lease table, keyed by MAC. The memory implementation is
// NewMemoryLeases; the state DB provides the persistent one.
// internal/leasetest holds the contract every implementation must pass.
type Leases interface {
	// Get returns the lease of mac, or an error of kind fault.NotFound.
	Get(ctx context.Context, mac net.HardwareAddr) (Lease, error)
	// Put stores l, replacing the lease of l.MAC. It fails with kind
	// fault.Conflict when another MAC holds l.IP with an active lease
	// (then nothing changes), and with fault.Invalid for a lease without
	// a 6-byte MAC or an IPv4 address. An expired lease of another MAC on
	// l.IP is dropped.
	Put(ctx context.Context, l Lease) error
	// Release drops the lease of mac; releasing a MAC without a lease is
	// not an error.
	Release(ctx context.Context, mac net.HardwareAddr) error
	// List returns every stored lease, expired ones included, in no
	// particular order.
	List(ctx context.Context) ([]Lease, error)
}

// MemoryLeases is a Leases in memory, lost when the process ends.
type MemoryLeases struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	byMAC  map[string]Lease
	byAddr map[string]string // IP -> MAC
}

// NewMemoryLeases returns an empty lease table.
func NewMemoryLeases() *MemoryLeases {
	return &MemoryLeases{byMAC: map[string]Lease{}, byAddr: map[string]string{}}
}

func (m *MemoryLeases) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Get implements Leases.
func (m *MemoryLeases) Get(_ context.Context, mac net.HardwareAddr) (Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.byMAC[mac.String()]
	if !ok {
		return Lease{}, fault.Errorf(fault.NotFound, "no dhcp lease for %s", mac)
	}
	return clone(l), nil
}

// Put implements Leases.
func (m *MemoryLeases) Put(_ context.Context, l Lease) error {
	if err := checkLease(l); err != nil {
		return err
	}
	l = clone(l)
	l.IP = l.IP.To4()
	m.mu.Lock()
	defer m.mu.Unlock()
	mac, ip := l.MAC.String(), l.IP.String()
	if other, ok := m.byAddr[ip]; ok && other != mac {
		if m.byMAC[other].Active(m.now()) {
			return fault.Errorf(fault.Conflict, "address %s is leased to %s", ip, other)
		}
		delete(m.byMAC, other)
	}
	if old, ok := m.byMAC[mac]; ok {
		delete(m.byAddr, old.IP.String())
	}
	m.byMAC[mac] = l
	m.byAddr[ip] = mac
	return nil
}

// Release implements Leases.
func (m *MemoryLeases) Release(_ context.Context, mac net.HardwareAddr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.byMAC[mac.String()]; ok {
		delete(m.byAddr, old.IP.String())
		delete(m.byMAC, mac.String())
	}
	return nil
}

// List implements Leases.
func (m *MemoryLeases) List(_ context.Context) ([]Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Lease, 0, len(m.byMAC))
	for _, l := range m.byMAC {
		out = append(out, clone(l))
	}
	return out, nil
}

func checkLease(l Lease) error {
	if len(l.MAC) != 6 {
		return fault.Errorf(fault.Invalid, "dhcp lease needs a 6-byte MAC, not %q", l.MAC)
	}
	if l.IP.To4() == nil {
		return fault.Errorf(fault.Invalid, "dhcp lease of %s needs an IPv4 address, not %v", l.MAC, l.IP)
	}
	return nil
}

func clone(l Lease) Lease {
	l.MAC = slices.Clone(l.MAC)
	l.IP = slices.Clone(l.IP)
	return l
}
