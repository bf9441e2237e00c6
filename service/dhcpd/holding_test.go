package dhcpd

import (
	"errors"
	"net"
	"testing"
)

// TestHolding: an address is held while the host has it, and the answer
// follows the host's addresses once the cache is stale.
func TestHolding(t *testing.T) {
	addrs := []net.Addr{&net.IPNet{IP: net.ParseIP("10.77.10.11").To4(), Mask: net.CIDRMask(24, 32)},
		&net.IPNet{IP: net.ParseIP("10.77.10.1").To4(), Mask: net.CIDRMask(24, 32)}}
	var fail error
	h := &holding{list: func() ([]net.Addr, error) { return addrs, fail }}
	cases := []struct {
		ip   string
		want bool
	}{{"10.77.10.1", true}, {"10.77.10.11", true}, {"10.77.10.12", false}}
	for _, c := range cases {
		if got := h.holds(net.ParseIP(c.ip).To4()); got != c.want {
			t.Fatalf("holds %s: %v, want %v", c.ip, got, c.want)
		}
	}
	// The floating address moved away: once the cache is stale, no more.
	addrs = addrs[:1]
	h.at = h.at.Add(-2 * holdingTTL)
	if h.holds(net.ParseIP("10.77.10.1").To4()) {
		t.Fatal("an address that moved away is still held")
	}
	fail = errors.New("netlink")
	h.at = h.at.Add(-2 * holdingTTL)
	if h.holds(net.ParseIP("10.77.10.11").To4()) {
		t.Fatal("held although the host's addresses are unknown")
	}
}
