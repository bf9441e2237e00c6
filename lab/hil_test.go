package lab

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/logging"
)

// TestHILDrivesTheLab serves the lab's hil-mock with the lab's drivers and
// drives a node through HIL's API: power on and off reach the libvirt
// machine, connect_network and detach_network move its tap on and off the
// provisioning VLAN.
func TestHILDrivesTheLab(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := logging.Discard()
	dir := filepath.Join(t.TempDir(), "lab")
	if stale, err := New("thil", dir, log); err == nil {
		_ = stale.Down(ctx, false)
	}
	l, err := Build(ctx, Options{Name: "thil", Dir: dir, Nodes: 1, MemoryMiB: 128}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down(context.Background(), false) })
	s, err := l.NewHIL(ctx, "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
		s.Close()
	}()
	cred, err := l.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, s.URL()+path, strings.NewReader(body))
		req.SetBasicAuth(HILUser, cred.HILUser)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	n1, _ := l.Node("node-01")
	m := vm.NewMachines(l.Daemon().Socket(), log)
	defer m.Close()

	if code, _ := call("POST", "/v0/node/node-01/power_on", ""); code != 200 {
		t.Fatalf("power_on: %d", code)
	}
	if on, err := m.Running(ctx, n1.Domain); err != nil || !on {
		t.Fatalf("after HIL power_on the machine runs = %v, %v", on, err)
	}
	if code, m := call("GET", "/v0/node/node-01/power_status", ""); code != 200 || m["power_status"] != "On" {
		t.Fatalf("power_status: %d %v", code, m)
	}
	if code, _ := call("POST", "/v0/node/node-01/power_off", ""); code != 200 {
		t.Fatalf("power_off: %d", code)
	}
	if on, _ := m.Running(ctx, n1.Domain); on {
		t.Fatal("after HIL power_off the machine still runs")
	}

	vlan := func() int {
		v, err := l.Net().VLAN(ctx, n1.Tap)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	action := func(op string) {
		t.Helper()
		code, m := call("POST", "/v0/node/node-01/nic/eth0/"+op, `{"network": "`+ProvisioningNetwork+`"}`)
		id, _ := m["status_id"].(string)
		if code != 202 || id == "" {
			t.Fatalf("%s: %d %v", op, code, m)
		}
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			_, st := call("GET", "/v0/networking_action/"+id, "")
			switch st["status"] {
			case "DONE":
				return
			case "ERROR":
				t.Fatalf("%s: action ERROR: %v", op, st)
			}
		}
		t.Fatalf("%s: action not done within 30 s", op)
	}
	if vlan() != 0 {
		t.Fatal("a new node's NIC is on a network")
	}
	action("connect_network")
	if got := vlan(); got != l.ProvisioningVLAN {
		t.Fatalf("after connect_network the tap is on VLAN %d, want %d", got, l.ProvisioningVLAN)
	}
	action("detach_network")
	if got := vlan(); got != 0 {
		t.Fatalf("after detach_network the tap is on VLAN %d, want none", got)
	}
}
