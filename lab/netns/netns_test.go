package netns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/service/logging"
)

func TestValidName(t *testing.T) {
	tests := map[string]struct {
		name string
		ok   bool
	}{
		"simple":        {"lab", true},
		"digits":        {"t1", true},
		"max length":    {"abcdefghijk", true},
		"too long":      {"abcdefghijkl", false},
		"empty":         {"", false},
		"leading digit": {"1lab", false},
		"upper":         {"Lab", false},
		"dash":          {"a-b", false},
		"slash":         {"a/b", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := ValidName(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil && !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
		})
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"lab", "", "a-b", "abcdefghijkl", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidName(s) != nil {
			return
		}
		if len("bml-"+s) > 15 || strings.ContainsAny(s, "/ \x00-.") {
			t.Fatalf("accepted %q", s)
		}
	})
}

func TestDefaultsHostLink(t *testing.T) {
	for _, name := range []string{"lab", "a", "t1", "ci", "abcdefghijk", "x9"} {
		c := Config{Name: name}.Defaults()
		a := c.HostLink.Addr().As4()
		if c.HostLink.Bits() != 30 || a[0] != 169 || a[1] != 254 || a[2] == 169 || a[2] == 0 || a[2] == 255 || a[3]%4 != 0 {
			t.Errorf("lab %q: host link %s", name, c.HostLink)
		}
	}
}

// newNet brings a lab network up and registers its removal.
func newNet(t *testing.T, name string) *Net {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip", "iproute2")
	testenv.RequireCommand(t, "bridge", "iproute2")
	n, err := New(Config{Name: name}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_ = n.Down(ctx) // a stale lab from a killed run
	if err := n.Up(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Down(context.Background()) })
	return n
}

func TestUpDownLeavesNothing(t *testing.T) {
	n := newNet(t, "tnsupdown")
	ctx := context.Background()
	for _, tap := range []string{"tap-a", "tap-b"} {
		if err := n.AddTap(ctx, tap); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Up(ctx); err != nil { // idempotent
		t.Fatalf("second Up: %v", err)
	}
	if err := n.AddTap(ctx, "tap-a"); err != nil {
		t.Fatalf("second AddTap: %v", err)
	}
	ports, err := n.Ports(ctx)
	if err != nil || fmt.Sprint(ports) != "map[tap-a:0 tap-b:0]" {
		t.Fatalf("ports = %v, %v; want two disconnected taps", ports, err)
	}
	if err := n.SetVLAN(ctx, "tap-b", 7); err != nil {
		t.Fatal(err)
	}
	if v, err := n.VLAN(ctx, "tap-b"); err != nil || v != 7 {
		t.Fatalf("tap-b VLAN = %v, %v; want 7", v, err)
	}
	// A process in the namespace: Down must stop it (ip netns del would not).
	id, err := proc.StartDaemon([]string{"ip", "netns", "exec", n.Namespace(), "sleep", "600"}, nil, t.TempDir()+"/sleep.log")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { p, _ := n.Pids(ctx); return len(p) == 1 })
	// The host reaches the lab end of the veth.
	busybox := testenv.RequireCommand(t, "busybox", "busybox-static")
	if out, err := proc.Run(ctx, busybox, "ping", "-c", "1", "-W", "2", n.LabAddr().String()); err != nil {
		t.Fatalf("host -> lab %s: %v\n%s", n.LabAddr(), err, out)
	}

	if err := n.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if n.Exists() {
		t.Error("namespace still exists after Down")
	}
	if id.Alive() {
		t.Errorf("process %d in the namespace still runs after Down", id.Pid)
	}
	if _, err := proc.Run(ctx, "ip", "link", "show", n.HostIf()); err == nil {
		t.Errorf("host link %s still exists after Down", n.HostIf())
	}
	out, _ := proc.Run(ctx, "ip", "netns", "list")
	if strings.Contains(out, n.Namespace()) {
		t.Errorf("ip netns list still shows %s", n.Namespace())
	}
	if err := n.Down(ctx); err != nil {
		t.Fatalf("Down of a removed lab: %v", err)
	}
}

func TestDownHalfBuilt(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	n, err := New(Config{Name: "tnshalf"}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	// Only the namespace, no bridge, no veth: what a killed Up leaves.
	if _, err := proc.Run(ctx, "ip", "netns", "add", n.Namespace()); err != nil {
		t.Fatal(err)
	}
	if err := n.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if n.Exists() {
		t.Fatal("namespace left")
	}
}

// endpoint is a helper namespace with one veth whose other end is a port
// of the lab bridge: a stand-in for a machine, to ping between ports.
func endpoint(t *testing.T, n *Net, port, addr string) string {
	t.Helper()
	ctx := context.Background()
	ns := n.Namespace() + "-" + port
	_, _ = proc.Run(ctx, "ip", "netns", "del", ns)
	if _, err := proc.Run(ctx, "ip", "netns", "add", ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = proc.Run(context.Background(), "ip", "netns", "del", ns) })
	for _, c := range [][]string{
		{"ip", "-n", n.Namespace(), "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "-n", n.Namespace(), "link", "set", port, "up"},
		{"ip", "-n", ns, "addr", "add", addr + "/24", "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
	} {
		if _, err := proc.Run(ctx, c...); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

func TestVLANIsolation(t *testing.T) {
	n := newNet(t, "tnsvlan")
	busybox := testenv.RequireCommand(t, "busybox", "busybox-static")
	ctx := context.Background()
	h1 := endpoint(t, n, "p1", "10.77.0.21")
	h2 := endpoint(t, n, "p2", "10.77.0.22")
	h3 := endpoint(t, n, "p3", "10.77.0.23")
	bridgeAddr := n.Config().Bridge4.Addr().String()
	prov := n.Config().ProvisioningVLAN
	// A port that just joined a bridge may drop the first frames, so a
	// ping gets three tries of one second: a reply in any counts.
	ping := func(from, to string) bool {
		for range 3 {
			if _, err := proc.Run(ctx, "ip", "netns", "exec", from, busybox, "ping", "-c", "1", "-W", "1", to); err == nil {
				return true
			}
		}
		return false
	}
	set := func(port string, vlan int) {
		t.Helper()
		if err := n.SetVLAN(ctx, port, vlan); err != nil {
			t.Fatal(err)
		}
	}
	// New ports belong to no VLAN: nobody can reach anybody.
	if ping(h1, "10.77.0.22") {
		t.Fatal("ports without VLAN can ping each other")
	}
	set("p1", 10)
	set("p2", 10)
	set("p3", 20)
	if v, err := n.VLAN(ctx, "p1"); err != nil || v != 10 {
		t.Fatalf("p1 VLAN = %v, %v", v, err)
	}
	steps := []struct {
		what     string
		from, to string
		want     bool
	}{
		{"same VLAN", h1, "10.77.0.22", true},
		{"same VLAN, back", h2, "10.77.0.21", true},
		{"other VLAN", h1, "10.77.0.23", false},
		{"other VLAN, back", h3, "10.77.0.22", false},
		{"tenant VLAN to the provisioning bridge", h1, bridgeAddr, false},
	}
	for _, s := range steps {
		if got := ping(s.from, s.to); got != s.want {
			t.Errorf("%s: ping %s -> %s = %v, want %v", s.what, s.from, s.to, got, s.want)
		}
	}
	// Connect p3 to the provisioning network: it reaches the bridge (where
	// bmid listens), and no longer its old VLAN's members.
	set("p3", prov)
	if v, _ := n.VLAN(ctx, "p3"); v != prov {
		t.Fatalf("p3 VLAN = %v, want %d", v, prov)
	}
	if !ping(h3, bridgeAddr) {
		t.Error("port on the provisioning VLAN cannot reach the bridge")
	}
	// Disconnect p1: it loses its peer.
	set("p1", 0)
	if ping(h1, "10.77.0.22") {
		t.Error("disconnected port still reaches its old VLAN")
	}
	if err := n.SetVLAN(ctx, "p1", 5000); !errors.Is(err, fault.ErrInvalid) {
		t.Errorf("VLAN 5000: %v, want ErrInvalid", err)
	}
	if err := n.SetVLAN(ctx, "nosuch", 10); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("unknown port: %v, want ErrNotFound", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5 s")
}

func TestSwitchDriver(t *testing.T) {
	n := newNet(t, "tnsswitch")
	ctx := context.Background()
	if err := n.AddTap(ctx, "tap-x"); err != nil {
		t.Fatal(err)
	}
	sw := NewSwitchDriver(n)
	nic := hilmock.NIC{Node: "node1", Label: "eth0", MAC: "52:54:00:00:00:01", Port: "tap-x"}
	vlan := func() int {
		t.Helper()
		v, err := n.VLAN(ctx, "tap-x")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := sw.Connect(ctx, nic, 100, "vlan/native"); err != nil || vlan() != 100 {
		t.Fatalf("connect: %v, VLAN %d", err, vlan())
	}
	if err := sw.Connect(ctx, nic, 100, "vlan/native"); err != nil {
		t.Fatalf("connect again: %v", err)
	}
	if err := sw.Connect(ctx, nic, 200, "vlan/native"); !errors.Is(err, fault.ErrConflict) || vlan() != 100 {
		t.Fatalf("connect to a second VLAN: %v, VLAN %d; want ErrConflict, 100", err, vlan())
	}
	if err := sw.Connect(ctx, nic, 200, "vlan/200"); !errors.Is(err, fault.ErrInvalid) {
		t.Fatalf("tagged channel: %v, want ErrInvalid", err)
	}
	if err := sw.Detach(ctx, nic, 200); err != nil || vlan() != 100 {
		t.Fatalf("detach from a VLAN it is not on: %v, VLAN %d", err, vlan())
	}
	if err := sw.Detach(ctx, nic, 100); err != nil || vlan() != 0 {
		t.Fatalf("detach: %v, VLAN %d", err, vlan())
	}
	if err := sw.Connect(ctx, hilmock.NIC{Node: "n", Label: "eth0"}, 100, "vlan/native"); !errors.Is(err, fault.ErrInvalid) {
		t.Fatalf("NIC without port: %v, want ErrInvalid", err)
	}
}
