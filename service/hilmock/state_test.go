package hilmock

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRestartKeepsState changes state through the API, stops the server
// (closing the database), opens a new one on the same file and finds it.
func TestRestartKeepsState(t *testing.T) {
	f := startFixture(t, "", true)
	steps := []struct{ method, path, body string }{
		{"PUT", "/v0/project/tenant-c", ""},
		{"PUT", "/v0/auth/basic/user/carol", `{"password":"carol-secret"}`},
		{"POST", "/v0/auth/basic/user/carol/add_project", `{"project":"tenant-c"}`},
		{"PUT", "/v0/node/node-09", obmBody},
		{"PUT", "/v0/node/node-09/nic/eth0", `{"macaddr":"52:54:00:00:01:09"}`},
		{"POST", "/v0/project/tenant-c/connect_node", `{"node":"node-09"}`},
		{"PUT", "/v0/network/tenant-c-net", `{"owner":"tenant-c","access":"tenant-c","net_id":""}`},
	}
	for _, s := range steps {
		if st, b := f.call("admin", s.method, s.path, s.body); st != 200 {
			t.Fatalf("%s %s: %d %s", s.method, s.path, st, b)
		}
	}
	st, b := f.call("carol", "POST", "/v0/node/node-09/nic/eth0/connect_network", `{"network":"tenant-c-net"}`)
	if st != 202 {
		t.Fatalf("connect: %d %s", st, b)
	}
	var out map[string]string
	json.Unmarshal(b, &out)
	if a := f.waitAction(out["status_id"]); a["status"] != StatusDone {
		t.Fatalf("action: %v", a)
	}
	before := snapshot(t, f)
	f.stop()

	g := startFixture(t, f.dbPath, false)
	if g.srv.Fresh() {
		t.Fatal("reopened database reported fresh")
	}
	if after := snapshot(t, g); after != before {
		t.Fatalf("state changed across restart:\nbefore %s\n after %s", before, after)
	}
	if st, _ := g.call("carol", "GET", "/v0/networking_action/"+out["status_id"], ""); st != 200 {
		t.Fatalf("action after restart: %d", st)
	}
	// Seeding again adds nothing and keeps what the API changed.
	inv, err := ReadInventory(exampleInventory)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := g.srv.Seed(context.Background(), inv); err != nil || n != 0 {
		t.Fatalf("re-seed: %d objects, %v; want 0, nil", n, err)
	}
	if after := snapshot(t, g); after != before {
		t.Fatalf("re-seed changed state:\nbefore %s\n after %s", before, after)
	}
}

// snapshot is what an admin sees of the whole site.
func snapshot(t *testing.T, f *fixture) string {
	t.Helper()
	var sb strings.Builder
	for _, p := range []string{"/v0/projects", "/v0/auth/basic/users", "/v0/networks", "/v0/nodes/all",
		"/v0/node/node-09", "/v0/node/node-01", "/v0/network/tenant-c-net", "/v0/project/tenant-c/nodes"} {
		st, b := f.call("admin", "GET", p, "")
		if st != 200 {
			t.Fatalf("GET %s: %d %s", p, st, b)
		}
		sb.WriteString(p + " " + string(b) + "\n")
	}
	return sb.String()
}

// TestShutdownLeavesActionPending stops the server while the switch holds
// an action: Serve returns after ShutdownTimeout, the action is still
// PENDING in the database, and the next Serve applies it.
func TestShutdownLeavesActionPending(t *testing.T) {
	f := startFixture(t, "", true)
	f.srv.shutdown = 200 * time.Millisecond
	f.sw.hold()
	st, b := f.call("alice", "POST", "/v0/node/node-01/nic/eth0/connect_network", `{"network":"tenant-a-net"}`)
	if st != 202 {
		t.Fatalf("connect: %d %s", st, b)
	}
	var out map[string]string
	json.Unmarshal(b, &out)
	f.cancel()
	if err := <-f.done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := f.srv.Close(); err != nil {
		t.Fatal(err)
	}
	f.cancel = nil
	if calls := f.sw.Calls(); len(calls) != 0 {
		t.Fatalf("switch applied %v before shutdown", calls)
	}

	g := startFixture(t, f.dbPath, false)
	if a := g.waitAction(out["status_id"]); a["status"] != StatusDone {
		t.Fatalf("resumed action: %v", a)
	}
	if got := g.sw.VLANs("node-01", "eth0"); len(got) != 1 || got[0] != 201 {
		t.Fatalf("VLANs after resume = %v, want [201]", got)
	}
}

// TestShutdownWaitsForActions: an action running at shutdown finishes
// within the timeout and is recorded DONE.
func TestShutdownWaitsForActions(t *testing.T) {
	f := startFixture(t, "", true)
	f.sw.delay = 100 * time.Millisecond
	st, b := f.call("alice", "POST", "/v0/node/node-01/nic/eth0/connect_network", `{"network":"tenant-a-net"}`)
	if st != 202 {
		t.Fatalf("connect: %d %s", st, b)
	}
	var out map[string]string
	json.Unmarshal(b, &out)
	f.stop()
	g := startFixture(t, f.dbPath, false)
	g.sw.hold() // a resumed action would hang here: there must be none
	if st, b := g.call("alice", "GET", "/v0/networking_action/"+out["status_id"], ""); st != 200 || !strings.Contains(string(b), `"DONE"`) {
		t.Fatalf("action after graceful shutdown: %d %s", st, b)
	}
}

func TestMigrationsVersioned(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	db, fresh, err := openDB(ctx, path)
	if err != nil || !fresh {
		t.Fatalf("first open: fresh=%t err=%v", fresh, err)
	}
	var v int
	db.QueryRow("PRAGMA user_version").Scan(&v)
	if v != len(migrations) {
		t.Fatalf("user_version %d, want %d", v, len(migrations))
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, _, err := openDB(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("open of a newer schema: %v, want an error saying it is newer", err)
	}
	if _, _, err := openDB(ctx, ""); err == nil {
		t.Fatal("empty path accepted")
	}
}

// failingPower is a PowerDriver whose every call fails.
type failingPower struct{}

func (failingPower) PowerCycle(context.Context, Node, bool) error {
	return errors.New("bmc unreachable")
}
func (failingPower) PowerOff(context.Context, Node) error { return errors.New("bmc unreachable") }
func (failingPower) PowerOn(context.Context, Node) error  { return errors.New("bmc unreachable") }
func (failingPower) PowerStatus(context.Context, Node) (string, error) {
	return "", errors.New("bmc unreachable")
}
func (failingPower) SetBootDevice(context.Context, Node, string) error {
	return errors.New("bmc unreachable")
}

// TestPowerDriverError: a failing power driver is HIL's 500 OBMError with
// the driver's message.
func TestPowerDriverError(t *testing.T) {
	ctx := context.Background()
	srv, err := New(ctx, filepath.Join(t.TempDir(), "hil.db"), Options{Power: failingPower{}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	inv, _ := ReadInventory(exampleInventory)
	if _, err := srv.Seed(ctx, inv); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v0/node/node-01/power_cycle", ""},
		{"POST", "/v0/node/node-01/power_off", ""},
		{"POST", "/v0/node/node-01/power_on", ""},
		{"GET", "/v0/node/node-01/power_status", ""},
		{"PUT", "/v0/node/node-01/boot_device", `{"bootdev":"pxe"}`},
	} {
		r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		r.SetBasicAuth("alice", "alice-secret")
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, r)
		if w.Code != 500 || !strings.Contains(w.Body.String(), `"type":"OBMError"`) || !strings.Contains(w.Body.String(), "bmc unreachable") {
			t.Errorf("%s %s: %d %s, want 500 OBMError", c.method, c.path, w.Code, w.Body)
		}
	}
}

// TestOnePendingActionPerNIC: concurrent connects of one NIC: exactly one
// is queued, the others get 409 BlockedError.
func TestOnePendingActionPerNIC(t *testing.T) {
	f := startFixture(t, "", true)
	f.sw.hold()
	nets := []string{"tenant-a-net", "bmi-provision", "public", "tenant-a-net", "bmi-provision", "public"}
	codes := make(chan int, len(nets))
	var wg sync.WaitGroup
	for _, nw := range nets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", f.srv.URL()+"/v0/node/node-01/nic/eth0/connect_network",
				strings.NewReader(`{"network":"`+nw+`","channel":"vlan/native"}`))
			req.SetBasicAuth("alice", "alice-secret")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[202] != 1 || count[409] != len(nets)-1 {
		t.Fatalf("status counts %v, want one 202 and %d 409", count, len(nets)-1)
	}
	f.sw.release()
}

// capture is a PowerDriver and SwitchDriver keeping what it was handed.
type capture struct {
	Recorder
	mu    sync.Mutex
	nodes []Node
	nics  []NIC
}

func (c *capture) PowerCycle(ctx context.Context, n Node, force bool) error {
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return c.Recorder.PowerCycle(ctx, n, force)
}

func (c *capture) Connect(ctx context.Context, nic NIC, vlan int, ch string) error {
	c.mu.Lock()
	c.nics = append(c.nics, nic)
	c.mu.Unlock()
	return c.Recorder.Connect(ctx, nic, vlan, ch)
}

// TestDriversSeeInventory: the drivers get the node's power address,
// hardware and NICs, and the NIC's MAC and port, as the inventory says.
func TestDriversSeeInventory(t *testing.T) {
	ctx := context.Background()
	c := &capture{}
	srv, err := New(ctx, filepath.Join(t.TempDir(), "hil.db"), Options{Power: c})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	inv, _ := ReadInventory(exampleInventory)
	if _, err := srv.Seed(ctx, inv); err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) (int, string) {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.SetBasicAuth("bob", "bob-secret")
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	if st, _ := do("POST", "/v0/node/node-03/power_cycle", ""); st != 200 {
		t.Fatalf("power cycle: %d", st)
	}
	st, b := do("POST", "/v0/node/node-03/nic/eth1/connect_network", `{"network":"tenant-b-net","channel":"vlan/202"}`)
	if st != 202 {
		t.Fatalf("connect: %d", st)
	}
	var out map[string]string
	json.Unmarshal([]byte(b), &out)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		if _, a := do("GET", "/v0/networking_action/"+out["status_id"], ""); !strings.Contains(a, StatusPending) {
			break
		}
		time.Sleep(delay)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	wantNode := Node{Name: "node-03", PowerAddress: "bmilab-node-03", Hardware: Hardware{CPUs: 4, MemoryMiB: 2048, LocalDiskGiB: 16},
		NICs: []NIC{{Node: "node-03", Label: "eth0", MAC: "52:54:00:00:01:03", Port: "tap-node-03"},
			{Node: "node-03", Label: "eth1", MAC: "52:54:00:00:02:03", Port: "tap-node-03b"}}}
	if len(c.nodes) != 1 || !reflect.DeepEqual(c.nodes[0], wantNode) {
		t.Fatalf("power driver got %+v\nwant %+v", c.nodes, wantNode)
	}
	wantNIC := NIC{Node: "node-03", Label: "eth1", MAC: "52:54:00:00:02:03", Port: "tap-node-03b"}
	if len(c.nics) != 1 || c.nics[0] != wantNIC {
		t.Fatalf("switch driver got %+v, want %+v", c.nics, wantNIC)
	}
	if got := c.Calls(); len(got) != 3 || got[2].String() != "Connect(node-03/eth1, vlan 202, vlan/202)" {
		t.Fatalf("calls %v", got)
	}
}
