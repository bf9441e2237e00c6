package hilmock

import (
	"context"
	"slices"
	"sync"
	"testing"
)

func TestRecorder(t *testing.T) {
	ctx := context.Background()
	var r Recorder
	if err := r.Detach(ctx, NIC{Node: "x", Label: "y"}, 5); err != nil {
		t.Fatal(err) // detaching from a fresh Recorder is not an error
	}
	n := Node{Name: "node-01"}
	nic := NIC{Node: "node-01", Label: "eth0", MAC: "52:54:00:00:00:01"}
	if s, _ := r.PowerStatus(ctx, n); s != PowerOffState {
		t.Fatalf("initial power = %q, want off", s)
	}
	_ = r.SetBootDevice(ctx, n, BootPXE)
	_ = r.PowerCycle(ctx, n, true)
	if s, _ := r.PowerStatus(ctx, n); s != PowerOnState {
		t.Fatalf("power after cycle = %q, want on", s)
	}
	_ = r.PowerOff(ctx, n)
	if s, _ := r.PowerStatus(ctx, n); s != PowerOffState {
		t.Fatalf("power after off = %q, want off", s)
	}
	_ = r.PowerOn(ctx, n)
	_ = r.Connect(ctx, nic, 102, "vlan/native")
	_ = r.Connect(ctx, nic, 101, "vlan/101")
	_ = r.Connect(ctx, nic, 101, "vlan/101")
	if got := r.VLANs("node-01", "eth0"); !slices.Equal(got, []int{101, 102}) {
		t.Fatalf("VLANs = %v, want [101 102]", got)
	}
	_ = r.Detach(ctx, nic, 102)
	if got := r.VLANs("node-01", "eth0"); !slices.Equal(got, []int{101}) {
		t.Fatalf("VLANs after detach = %v, want [101]", got)
	}
	if got := r.BootDevice("node-01"); got != BootPXE {
		t.Fatalf("boot device = %q", got)
	}
	var ops []string
	for _, c := range r.Calls() {
		ops = append(ops, c.String())
	}
	want := []string{"Detach(x/y, vlan 5)", "PowerStatus(node-01)", "SetBootDevice(node-01, pxe)", "PowerCycle(node-01, force=true)",
		"PowerStatus(node-01)", "PowerOff(node-01)", "PowerStatus(node-01)", "PowerOn(node-01)",
		"Connect(node-01/eth0, vlan 102, vlan/native)", "Connect(node-01/eth0, vlan 101, vlan/101)",
		"Connect(node-01/eth0, vlan 101, vlan/101)", "Detach(node-01/eth0, vlan 102)"}
	if !slices.Equal(ops, want) {
		t.Fatalf("calls:\n got %q\nwant %q", ops, want)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	var r Recorder
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nic := NIC{Node: "n", Label: "eth0"}
			_ = r.Connect(context.Background(), nic, i, "vlan/native")
			_ = r.PowerOn(context.Background(), Node{Name: "n"})
		}()
	}
	wg.Wait()
	if got := len(r.Calls()); got != 16 {
		t.Fatalf("recorded %d calls, want 16", got)
	}
}
