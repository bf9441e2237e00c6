// Package netnstest gives a test two network namespaces of its own joined
// by a veth pair: "server" (with an address) and "client" (without one,
// for DHCP clients). Nothing leaves them; both are deleted when the test
// ends, passed or failed. Tests that use it need root and iproute2: they
// skip outside CI and fail under CI=true (internal/testenv).
package netnstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bmi-go/bmi/internal/testenv"
)

// NS is one network namespace made by the test.
type NS struct {
	// Name is the namespace's name (ip netns list).
	Name string
	// Iface is the veth end inside this namespace.
	Iface string
}

// Pair is a server and a client namespace joined by a veth pair.
type Pair struct {
	Server NS
	Client NS
	// ServerIP is the server end's address, in ServerNet.
	ServerIP net.IP
	// ServerNet is the subnet of the link (10.199.0.0/24).
	ServerNet *net.IPNet
}

// New makes the pair, or stops the test (testenv.Missing) when it cannot:
// not root, no ip(8), no namespace support.
func New(t testing.TB) *Pair {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip", "iproute2")
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b[:])
	p := &Pair{
		Server:    NS{Name: "bmitest-" + id + "-s", Iface: "bts" + id},
		Client:    NS{Name: "bmitest-" + id + "-c", Iface: "btc" + id},
		ServerIP:  net.IPv4(10, 199, 0, 1).To4(),
		ServerNet: &net.IPNet{IP: net.IPv4(10, 199, 0, 0).To4(), Mask: net.CIDRMask(24, 32)},
	}
	t.Cleanup(func() {
		for _, ns := range []string{p.Server.Name, p.Client.Name} {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
				t.Logf("cleanup: ip netns del %s: %v: %s", ns, err, out)
			}
		}
	})
	if out, err := exec.Command("ip", "netns", "add", p.Server.Name).CombinedOutput(); err != nil {
		testenv.Missing(t, "network namespaces", fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	steps := [][]string{
		{"netns", "add", p.Client.Name},
		// The veth is created inside the server namespace, so neither end
		// ever exists in the namespace the test runs in.
		{"-n", p.Server.Name, "link", "add", p.Server.Iface, "type", "veth", "peer", "name", p.Client.Iface, "netns", p.Client.Name},
		{"-n", p.Server.Name, "addr", "add", "10.199.0.1/24", "dev", p.Server.Iface},
		{"-n", p.Server.Name, "link", "set", "lo", "up"},
		{"-n", p.Server.Name, "link", "set", p.Server.Iface, "up"},
		{"-n", p.Client.Name, "link", "set", "lo", "up"},
		{"-n", p.Client.Name, "link", "set", p.Client.Iface, "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return p
}

// Do runs f on an OS thread that has joined the namespace, so sockets f
// opens belong to it; the thread is discarded afterwards. Goroutines f
// starts run in the test's own namespace: open sockets in f itself.
func (n NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread dies with this goroutine instead of
		// going back to the scheduler inside the wrong namespace.
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+n.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", n.Name, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("join namespace %s: %w", n.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Go runs f like Do, but in the background; the returned channel gets f's
// error. Use it for Serve(ctx) loops that open their sockets first.
func (n NS) Go(f func() error) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- n.Do(f) }()
	return errc
}

// Command returns a command that runs name inside the namespace.
func (n NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// AddClientIP gives the client end a static address (for tests without
// DHCP); it returns the address.
func (p *Pair) AddClientIP(t testing.TB) net.IP {
	t.Helper()
	if out, err := exec.Command("ip", "-n", p.Client.Name, "addr", "add", "10.199.0.2/24", "dev", p.Client.Iface).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add in %s: %v: %s", p.Client.Name, err, out)
	}
	return net.IPv4(10, 199, 0, 2).To4()
}
