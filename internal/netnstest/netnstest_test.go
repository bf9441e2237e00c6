package netnstest

import (
	"context"
	"net"
	"testing"

	"github.com/bmi-go/bmi/internal/testenv"
)

func TestPair(t *testing.T) {
	testenv.RequireCommand(t, "busybox", "busybox-static")
	p := New(t)
	p.AddClientIP(t)
	var ln *net.UDPConn
	if err := p.Server.Do(func() error {
		var err error
		ln, err = net.ListenUDP("udp", &net.UDPAddr{IP: p.ServerIP, Port: 9999})
		return err
	}); err != nil {
		t.Fatalf("listen inside the server namespace: %v", err)
	}
	defer ln.Close()
	// The server address does not exist in the test's own namespace.
	if c, err := net.ListenUDP("udp", &net.UDPAddr{IP: p.ServerIP, Port: 9999}); err == nil {
		c.Close()
		t.Fatal("the server address is reachable outside the namespace")
	}
	out, err := p.Client.Command(context.Background(), "ip", "-4", "addr", "show", "dev", p.Client.Iface).CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr in client namespace: %v: %s", err, out)
	}
	if out, err := p.Client.Command(context.Background(), "busybox", "ping", "-c", "1", "-W", "5", p.ServerIP.String()).CombinedOutput(); err != nil {
		t.Fatalf("ping from the client to the server namespace: %v: %s", err, out)
	}
}
