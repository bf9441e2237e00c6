package dhcpd

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

func TestNewFromConfig(t *testing.T) {
	c := config.Default().Boot
	c.Interfaces = []string{"eth1"}
	c.BaseURL = "http://10.0.0.1:8080"
	c.DHCP.RangeStart, c.DHCP.RangeEnd, c.DHCP.Netmask = "10.0.0.100", "10.0.0.200", "24"
	c.DHCP.DNS = []string{"10.0.0.53"}
	c.Faults.DHCP.DropPercent = 10
	s, err := NewFromConfig(c, nodeMap{}, NewMemoryLeases(), logging.Discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Pool.Start.Equal(net.IPv4(10, 0, 0, 100)) || s.Pool.Netmask.String() != "ffffff00" || s.Pool.LeaseTime != time.Hour ||
		len(s.Pool.DNS) != 1 || !s.RouterAdvertisements || s.Faults.DropRate != 0.1 || s.Mode != ModeServer {
		t.Fatalf("server from config: %+v", s)
	}
	bad := map[string]func(*config.Boot){
		"no interfaces": func(c *config.Boot) { c.Interfaces = nil },
		"bad start":     func(c *config.Boot) { c.DHCP.RangeStart = "x" },
		"bad mask":      func(c *config.Boot) { c.DHCP.Netmask = "33" },
		"bad mode":      func(c *config.Boot) { c.DHCP.Mode = "relay" },
		"bad server ip": func(c *config.Boot) { c.DHCP.ServerIP = "::1" },
	}
	for name, mod := range bad {
		t.Run(name, func(t *testing.T) {
			cc := c
			mod(&cc)
			if _, err := NewFromConfig(cc, nodeMap{}, NewMemoryLeases(), logging.Discard(), nil); !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("NewFromConfig = %v, want invalid", err)
			}
		})
	}
	proxy := c
	proxy.DHCP.Mode, proxy.DHCP.RangeStart, proxy.DHCP.Netmask = "proxy", "", ""
	if _, err := NewFromConfig(proxy, nodeMap{}, nil, logging.Discard(), nil); err != nil {
		t.Fatalf("proxy mode without a pool: %v", err)
	}
}
