//go:build ceph_preview

package daemon

import (
	"net/netip"
	"testing"

	"github.com/bmi-go/bmi/service/fault"
)

// TestLocatorNetwork: a login is redirected to the owner's address on the
// network it came in on (the network of this host's address that holds
// the address the initiator connected to); an owner with none there, or
// none at all, is "unavailable" (the initiator tries again), never a
// wrong network's address.
func TestLocatorNetwork(t *testing.T) {
	nets := []netip.Prefix{netip.MustParsePrefix("10.77.0.11/24"), netip.MustParsePrefix("10.77.10.11/24"),
		netip.MustParsePrefix("10.77.10.1/24"), netip.MustParsePrefix("10.77.10.23/24"),
		netip.MustParsePrefix("10.77.11.11/24"), netip.MustParsePrefix("127.0.0.1/8")}
	l := &locator{networks: func() ([]netip.Prefix, error) { return nets, nil }}
	owner := []string{"10.77.0.22:3260", "10.77.10.22:3260", "10.77.11.22:3260"}
	cases := map[string]struct {
		addrs []string
		local string
		want  string
	}{
		"provisioning network":       {owner, "10.77.0.1:3260", "10.77.0.22:3260"},
		"project network":            {owner, "10.77.10.1:3260", "10.77.10.22:3260"},
		"other project network":      {owner, "10.77.11.1:3260", "10.77.11.22:3260"},
		"own address moved here":     {owner, "10.77.10.21:3260", "10.77.10.22:3260"},
		"one address":                {[]string{"127.0.0.1:4000"}, "127.0.0.1:3260", "127.0.0.1:4000"},
		"no address on that network": {owner[:2], "10.77.11.1:3260", ""},
		"no address at all":          {nil, "10.77.0.1:3260", ""},
		"unknown network":            {owner, "192.0.2.1:3260", ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := l.onNetworkOf("gw-b", c.addrs, c.local)
			if c.want == "" {
				if fault.Of(err) != fault.Unavailable {
					t.Fatalf("got %q, %v; want unavailable", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %s", got, err, c.want)
			}
		})
	}
}
