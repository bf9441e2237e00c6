package dhcpd

import (
	"net"
	"sync"
	"time"
)

// holding says whether an address is this host's now, asking the kernel
// at most once a second.
type holding struct {
	mu    sync.Mutex
	at    time.Time
	addrs map[string]bool
	// list returns this host's addresses; nil: net.InterfaceAddrs.
	list func() ([]net.Addr, error)
}

// holdingTTL is how long holding trusts what the kernel said.
const holdingTTL = time.Second

// holds reports whether ip is an address of this host (false when the
// kernel cannot say).
func (h *holding) holds(ip net.IP) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.addrs == nil || time.Since(h.at) > holdingTTL {
		list := h.list
		if list == nil {
			list = net.InterfaceAddrs
		}
		as, err := list()
		if err != nil {
			return false
		}
		h.addrs, h.at = map[string]bool{}, time.Now()
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok {
				h.addrs[n.IP.String()] = true
			}
		}
	}
	return h.addrs[ip.String()]
}
