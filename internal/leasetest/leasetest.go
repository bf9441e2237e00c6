// Package leasetest is the contract every implementation of dhcpd.Leases
// must pass: the memory table of service/dhcpd and the state DB's. Call Run
// from the implementation's tests with a constructor of empty tables.
package leasetest

import (
	"context"
	"errors"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/fault"
)

var (
	macA = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0xb}
	ip1  = net.IPv4(10, 0, 0, 1).To4()
	ip2  = net.IPv4(10, 0, 0, 2).To4()
)

// Run runs the contract against tables made by newLeases (each subtest
// gets a fresh, empty one).
func Run(t *testing.T, newLeases func(t *testing.T) dhcpd.Leases) {
	ctx := context.Background()
	later := time.Now().Add(time.Hour).Truncate(time.Second)
	past := time.Now().Add(-time.Hour).Truncate(time.Second)

	t.Run("get unknown", func(t *testing.T) {
		l := newLeases(t)
		if _, err := l.Get(ctx, macA); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("Get of an unknown MAC = %v, want not found", err)
		}
	})
	t.Run("put get", func(t *testing.T) {
		l := newLeases(t)
		want := dhcpd.Lease{MAC: macA, IP: ip1, Expires: later, Hostname: "node1"}
		mustPut(t, l, want)
		got, err := l.Get(ctx, macA)
		if err != nil {
			t.Fatal(err)
		}
		if got.MAC.String() != want.MAC.String() || !got.IP.Equal(want.IP) || !got.Expires.Equal(want.Expires) || got.Hostname != want.Hostname {
			t.Fatalf("Get = %+v, want %+v", got, want)
		}
	})
	t.Run("put replaces the lease of the same mac", func(t *testing.T) {
		l := newLeases(t)
		mustPut(t, l, dhcpd.Lease{MAC: macA, IP: ip1, Expires: later})
		mustPut(t, l, dhcpd.Lease{MAC: macA, IP: ip2, Expires: later})
		got, err := l.Get(ctx, macA)
		if err != nil || !got.IP.Equal(ip2) {
			t.Fatalf("Get = %+v, %v; want %s", got, err, ip2)
		}
		// The old address is free again.
		mustPut(t, l, dhcpd.Lease{MAC: macB, IP: ip1, Expires: later})
		if all := list(t, l); len(all) != 2 {
			t.Fatalf("List = %+v, want 2 leases", all)
		}
	})
	t.Run("active address of another mac conflicts", func(t *testing.T) {
		l := newLeases(t)
		mustPut(t, l, dhcpd.Lease{MAC: macA, IP: ip1, Expires: later})
		err := l.Put(ctx, dhcpd.Lease{MAC: macB, IP: ip1, Expires: later})
		if !errors.Is(err, fault.ErrConflict) {
			t.Fatalf("Put of a leased address = %v, want conflict", err)
		}
		if _, err := l.Get(ctx, macB); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("a refused Put left a lease: %v", err)
		}
	})
	t.Run("expired address of another mac is taken over", func(t *testing.T) {
		l := newLeases(t)
		mustPut(t, l, dhcpd.Lease{MAC: macA, IP: ip1, Expires: past})
		mustPut(t, l, dhcpd.Lease{MAC: macB, IP: ip1, Expires: later})
		if _, err := l.Get(ctx, macA); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("the expired lease of %s survived the take-over: %v", macA, err)
		}
	})
	t.Run("release", func(t *testing.T) {
		l := newLeases(t)
		mustPut(t, l, dhcpd.Lease{MAC: macA, IP: ip1, Expires: later})
		if err := l.Release(ctx, macA); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Get(ctx, macA); !errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("Get after Release = %v, want not found", err)
		}
		if err := l.Release(ctx, macA); err != nil {
			t.Fatalf("second Release = %v, want nil", err)
		}
		mustPut(t, l, dhcpd.Lease{MAC: macB, IP: ip1, Expires: later})
	})
	t.Run("invalid", func(t *testing.T) {
		l := newLeases(t)
		for name, bad := range map[string]dhcpd.Lease{
			"no mac":   {IP: ip1, Expires: later},
			"long mac": {MAC: net.HardwareAddr{1, 2, 3, 4, 5, 6, 7, 8}, IP: ip1, Expires: later},
			"no ip":    {MAC: macA, Expires: later},
			"ipv6":     {MAC: macA, IP: net.ParseIP("fd00::1"), Expires: later},
		} {
			if err := l.Put(ctx, bad); !errors.Is(err, fault.ErrInvalid) {
				t.Errorf("Put(%s) = %v, want invalid", name, err)
			}
		}
		if all := list(t, l); len(all) != 0 {
			t.Fatalf("invalid Puts left %+v", all)
		}
	})
	t.Run("concurrent puts of one address", func(t *testing.T) {
		l := newLeases(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mac := net.HardwareAddr{0x52, 0x54, 0, 0, 1, byte(i)}
				err := l.Put(ctx, dhcpd.Lease{MAC: mac, IP: ip1, Expires: later})
				if err != nil && !errors.Is(err, fault.ErrConflict) {
					t.Errorf("Put: %v", err)
				}
				if err == nil {
					mu.Lock()
					won++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("%d concurrent Puts of one address succeeded, want exactly 1", won)
		}
		if all := list(t, l); len(all) != 1 {
			t.Fatalf("List = %+v, want 1 lease", all)
		}
	})
}

func mustPut(t *testing.T, l dhcpd.Leases, lease dhcpd.Lease) {
	t.Helper()
	if err := l.Put(context.Background(), lease); err != nil {
		t.Fatalf("Put(%+v): %v", lease, err)
	}
}

func list(t *testing.T, l dhcpd.Leases) []dhcpd.Lease {
	t.Helper()
	all, err := l.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].MAC.String() < all[j].MAC.String() })
	return all
}
