package hilmock

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// contractRow is one call of the contract table and HIL's documented
// answer (HIL's hil/api.py, CCI-MOC/hil).
type contractRow struct {
	name   string
	before func(f *fixture)
	who    string // key of creds; "anon" sends none
	method string
	path   string // "{id}" is replaced by the last status_id
	body   string
	status int
	typ    string // HIL error type, for error answers
	check  func(t *testing.T, f *fixture, body []byte)
	after  func(t *testing.T, f *fixture)
}

func jsonEq(want string) func(*testing.T, *fixture, []byte) {
	return func(t *testing.T, _ *fixture, body []byte) {
		t.Helper()
		var g, w any
		if err := json.Unmarshal(body, &g); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			t.Fatalf("want %q: %v", want, err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("body\n got %s\nwant %s", body, want)
		}
	}
}

func emptyBody(t *testing.T, _ *fixture, body []byte) {
	t.Helper()
	if len(body) != 0 {
		t.Errorf("body %q, want empty", body)
	}
}

// lastID is the status_id of the last 202 answer; heldID the one held
// PENDING by the test switch.
var lastID, heldID string

func statusID(t *testing.T, _ *fixture, body []byte) {
	t.Helper()
	var out map[string]string
	if err := json.Unmarshal(body, &out); err != nil || len(out) != 1 || len(out["status_id"]) != 36 {
		t.Fatalf("body %q, want {\"status_id\": <uuid>}", body)
	}
	lastID = out["status_id"]
}

func waitStatus(want string) func(*testing.T, *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		if a := f.waitAction(lastID); a["status"] != want {
			t.Fatalf("action %s ended %v, want %s", lastID, a, want)
		}
	}
}

func networksOf(node, nic, want string) func(*testing.T, *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		st, b := f.call("admin", "GET", "/v0/node/"+node, "")
		var n struct {
			NICs []struct {
				Label    string
				Networks map[string]string
			}
		}
		if st != 200 || json.Unmarshal(b, &n) != nil {
			t.Fatalf("show node %s: %d %s", node, st, b)
		}
		for _, c := range n.NICs {
			if c.Label == nic {
				got, _ := json.Marshal(c.Networks)
				if string(got) != want {
					t.Errorf("networks of %s/%s = %s, want %s", node, nic, got, want)
				}
				return
			}
		}
		t.Errorf("node %s has no nic %s", node, nic)
	}
}

func calls(want ...string) func(*testing.T, *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		var got []string
		for _, c := range f.power.Calls() {
			got = append(got, c.String())
		}
		if len(got) < len(want) || !slices.Equal(got[len(got)-len(want):], want) {
			t.Errorf("last power calls %q, want %q", got, want)
		}
	}
}

const obmBody = `{"obm": {"type": "http://schema.massopencloud.org/haas/v0/obm/mock", "host": "bmilab-node-09", "user": "u", "password": "p"}, "metadata": {"cpus": 1}}`

var contract = []contractRow{
	// Authentication: every call requires it ([auth] require_authentication).
	{name: "no credentials", who: "anon", method: "GET", path: "/v0/nodes/free", status: 401, typ: TypeAuthorization},
	{name: "wrong password", who: "wrongpw", method: "GET", path: "/v0/nodes/free", status: 401, typ: TypeAuthorization},
	{name: "unknown user", who: "ghost", method: "GET", path: "/v0/nodes/free", status: 401, typ: TypeAuthorization},
	{name: "list free nodes", who: "alice", method: "GET", path: "/v0/nodes/free", status: 200, check: jsonEq(`["node-04"]`)},
	{name: "list all nodes", who: "bob", method: "GET", path: "/v0/nodes/all", status: 200, check: jsonEq(`["node-01","node-02","node-03","node-04"]`)},
	// Request validation comes before authentication, as in HIL.
	{name: "GET with a body", who: "alice", method: "GET", path: "/v0/node/node-01", body: `{}`, status: 400, typ: TypeValidation},
	{name: "GET with an unknown argument", who: "alice", method: "GET", path: "/v0/node/node-01?x=1", status: 400, typ: TypeValidation},
	{name: "no such call", who: "alice", method: "GET", path: "/v0/nope", status: 404, typ: TypeNotFound},
	// show_node.
	{name: "show node (member)", who: "alice", method: "GET", path: "/v0/node/node-01", status: 200,
		check: jsonEq(`{"name":"node-01","project":"tenant-a","nics":[{"label":"eth0","macaddr":"52:54:00:00:01:01","networks":{}}],
			"metadata":{"cpus":"2","memory_mib":"1024","local_disk_gib":"8","rack":"\"r1\""}}`)},
	{name: "show node (admin sees port, switch)", who: "admin", method: "GET", path: "/v0/node/node-03", status: 200,
		check: jsonEq(`{"name":"node-03","project":"tenant-b","nics":[
			{"label":"eth0","macaddr":"52:54:00:00:01:03","networks":{},"port":"tap-node-03","switch":"bmilab-br0"},
			{"label":"eth1","macaddr":"52:54:00:00:02:03","networks":{},"port":"tap-node-03b","switch":"bmilab-br0"}],
			"metadata":{"cpus":"4","memory_mib":"2048","local_disk_gib":"16"}}`)},
	{name: "show node (non-member)", who: "bob", method: "GET", path: "/v0/node/node-01", status: 401, typ: TypeAuthorization},
	{name: "show free node (anyone)", who: "bob", method: "GET", path: "/v0/node/node-04", status: 200,
		check: func(t *testing.T, _ *fixture, b []byte) {
			if !strings.Contains(string(b), `"project":null`) {
				t.Errorf("free node: %s, want project null", b)
			}
		}},
	{name: "show unknown node", who: "alice", method: "GET", path: "/v0/node/nope", status: 404, typ: TypeNotFound},
	// list_project_nodes: BMI's authorisation probe.
	{name: "project nodes (member)", who: "alice", method: "GET", path: "/v0/project/tenant-a/nodes", status: 200, check: jsonEq(`["node-01","node-02"]`)},
	{name: "project nodes (admin)", who: "admin", method: "GET", path: "/v0/project/tenant-b/nodes", status: 200, check: jsonEq(`["node-03"]`)},
	{name: "project nodes (non-member)", who: "bob", method: "GET", path: "/v0/project/tenant-a/nodes", status: 401, typ: TypeAuthorization},
	{name: "project nodes (unknown project)", who: "alice", method: "GET", path: "/v0/project/nope/nodes", status: 404, typ: TypeNotFound},
	// Admin-only calls.
	{name: "list users (admin)", who: "admin", method: "GET", path: "/v0/auth/basic/users", status: 200,
		check: jsonEq(`{"alice":{"is_admin":false,"projects":["tenant-a"]},"bmi":{"is_admin":false,"projects":["bmi_infra","tenant-a","tenant-b"]},
			"bob":{"is_admin":false,"projects":["tenant-b"]},"hiladmin":{"is_admin":true,"projects":[]}}`)},
	{name: "list users (non-admin)", who: "alice", method: "GET", path: "/v0/auth/basic/users", status: 401, typ: TypeAuthorization},
	{name: "list projects (non-admin)", who: "bmi", method: "GET", path: "/v0/projects", status: 401, typ: TypeAuthorization},
	// show_network.
	{name: "show network (access)", who: "alice", method: "GET", path: "/v0/network/tenant-a-net", status: 200,
		check: jsonEq(`{"name":"tenant-a-net","owner":"tenant-a","access":["tenant-a"],"channels":["vlan/native","vlan/201"],"connected-nodes":{}}`)},
	{name: "show network (no access)", who: "bob", method: "GET", path: "/v0/network/tenant-a-net", status: 401, typ: TypeAuthorization},
	{name: "show public network", who: "bob", method: "GET", path: "/v0/network/public", status: 200,
		check: jsonEq(`{"name":"public","owner":"admin","access":null,"channels":["vlan/native","vlan/300"],"connected-nodes":{}}`)},
	{name: "show unknown network", who: "bob", method: "GET", path: "/v0/network/nope", status: 404, typ: TypeNotFound},
	// connect_network: bad input.
	{name: "connect: malformed JSON", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":`, status: 400, typ: TypeValidation},
	{name: "connect: body not an object", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `["tenant-a-net"]`, status: 400, typ: TypeValidation},
	{name: "connect: network not a string", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":5}`, status: 400, typ: TypeValidation},
	{name: "connect: network missing", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{}`, status: 400, typ: TypeValidation},
	{name: "connect: unknown argument", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":"tenant-a-net","vlan":5}`, status: 400, typ: TypeValidation},
	{name: "connect: path argument in body", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":"tenant-a-net","node":"node-02"}`, status: 400, typ: TypeValidation},
	{name: "connect: unknown node", who: "alice", method: "POST", path: "/v0/node/nope/nic/eth0/connect_network", body: `{"network":"tenant-a-net"}`, status: 404, typ: TypeNotFound},
	{name: "connect: unknown nic", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth9/connect_network", body: `{"network":"tenant-a-net"}`, status: 404, typ: TypeNotFound},
	{name: "connect: unknown network", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":"nope"}`, status: 404, typ: TypeNotFound},
	{name: "connect: free node", who: "admin", method: "POST", path: "/v0/node/node-04/nic/eth0/connect_network", body: `{"network":"public"}`, status: 409, typ: TypeProjectMismatch},
	{name: "connect: non-member", who: "bob", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":"public"}`, status: 401, typ: TypeAuthorization},
	{name: "connect: network without access", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":"tenant-b-net"}`, status: 409, typ: TypeProjectMismatch},
	{name: "connect: illegal channel", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":"tenant-a-net","channel":"vlan/999"}`, status: 400, typ: TypeBadArgument},
	// connect_network: asynchronous, one pending action per NIC.
	{name: "connect (queued)", before: func(f *fixture) { f.sw.hold() }, who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":"tenant-a-net"}`, status: 202, check: statusID},
	{name: "action PENDING", who: "alice", method: "GET", path: "/v0/networking_action/{id}", status: 200,
		check: jsonEq(`{"status":"PENDING","node":"node-01","nic":"eth0","type":"modify_port","channel":"vlan/native","new_network":"tenant-a-net"}`),
		after: func(*testing.T, *fixture) { heldID = lastID }},
	{name: "second action while pending", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":"bmi-provision","channel":"vlan/100"}`, status: 409, typ: TypeBlocked},
	{name: "detach while pending", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/detach_network", body: `{"network":"tenant-a-net"}`, status: 409, typ: TypeBlocked},
	{name: "other NIC not blocked", who: "bob", method: "POST", path: "/v0/node/node-03/nic/eth1/connect_network", body: `{"network":"tenant-b-net"}`, status: 202, check: statusID,
		after: func(t *testing.T, f *fixture) {
			f.sw.release()
			if a := f.waitAction(heldID); a["status"] != StatusDone {
				t.Fatalf("held action ended %v", a)
			}
			waitStatus(StatusDone)(t, f)
			networksOf("node-01", "eth0", `{"vlan/native":"tenant-a-net"}`)(t, f)
		}},
	{name: "action DONE", who: "bob", method: "GET", path: "/v0/networking_action/{id}", status: 200,
		check: jsonEq(`{"status":"DONE","node":"node-03","nic":"eth1","type":"modify_port","channel":"vlan/native","new_network":"tenant-b-net"}`)},
	{name: "action (non-member)", who: "alice", method: "GET", path: "/v0/networking_action/{id}", status: 401, typ: TypeAuthorization},
	{name: "action unknown", who: "alice", method: "GET", path: "/v0/networking_action/00000000-0000-4000-8000-000000000000", status: 404, typ: TypeNotFound},
	{name: "connect: already attached", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":"tenant-a-net"}`, status: 409, typ: TypeBlocked},
	{name: "connect: channel in use", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":"bmi-provision","channel":"vlan/native"}`, status: 409, typ: TypeBlocked},
	{name: "connect: tagged on a second channel", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/connect_network", body: `{"network":"bmi-provision","channel":"vlan/100"}`, status: 202, check: statusID,
		after: func(t *testing.T, f *fixture) {
			waitStatus(StatusDone)(t, f)
			networksOf("node-01", "eth0", `{"vlan/100":"bmi-provision","vlan/native":"tenant-a-net"}`)(t, f)
		}},
	{name: "network shows connected node", who: "alice", method: "GET", path: "/v0/network/tenant-a-net", status: 200,
		check: jsonEq(`{"name":"tenant-a-net","owner":"tenant-a","access":["tenant-a"],"channels":["vlan/native","vlan/201"],"connected-nodes":{"node-01":["eth0"]}}`)},
	{name: "switch failure → ERROR", before: func(f *fixture) { f.sw.mu.Lock(); f.sw.failVLAN = 300; f.sw.mu.Unlock() },
		who: "alice", method: "POST", path: "/v0/node/node-02/nic/eth0/connect_network", body: `{"network":"public"}`, status: 202, check: statusID,
		after: func(t *testing.T, f *fixture) {
			waitStatus(StatusError)(t, f)
			networksOf("node-02", "eth0", `{}`)(t, f)
		}},
	{name: "detach: network not attached", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/detach_network", body: `{"network":"public"}`, status: 400, typ: TypeBadArgument},
	{name: "detach: unknown network", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/detach_network", body: `{"network":"nope"}`, status: 404, typ: TypeNotFound},
	{name: "detach: non-member", who: "bob", method: "POST", path: "/v0/node/node-01/nic/eth0/detach_network", body: `{"network":"tenant-a-net"}`, status: 401, typ: TypeAuthorization},
	{name: "detach (queued)", who: "alice", method: "POST", path: "/v0/node/node-01/nic/eth0/detach_network", body: `{"network":"tenant-a-net"}`, status: 202, check: statusID,
		after: func(t *testing.T, f *fixture) {
			waitStatus(StatusDone)(t, f)
			networksOf("node-01", "eth0", `{"vlan/100":"bmi-provision"}`)(t, f)
		}},
	{name: "detach action has no new_network", who: "alice", method: "GET", path: "/v0/networking_action/{id}", status: 200,
		check: jsonEq(`{"status":"DONE","node":"node-01","nic":"eth0","type":"modify_port","channel":"vlan/native","new_network":null}`)},
	{name: "delete network still attached", who: "admin", method: "DELETE", path: "/v0/network/bmi-provision", status: 409, typ: TypeBlocked},
	{name: "delete network (non-owner)", who: "bob", method: "DELETE", path: "/v0/network/tenant-a-net", status: 401, typ: TypeAuthorization},
	// Power, through the PowerDriver.
	{name: "power cycle", who: "alice", method: "POST", path: "/v0/node/node-01/power_cycle", body: `{"force":true}`, status: 200, check: emptyBody,
		after: calls("SetBootDevice(node-01, pxe)", "PowerCycle(node-01, force=true)")},
	{name: "power cycle without body", who: "alice", method: "POST", path: "/v0/node/node-02/power_cycle", status: 200,
		after: calls("SetBootDevice(node-02, pxe)", "PowerCycle(node-02, force=false)")},
	{name: "power cycle: force not a bool", who: "alice", method: "POST", path: "/v0/node/node-01/power_cycle", body: `{"force":"yes"}`, status: 400, typ: TypeValidation},
	{name: "power cycle (non-member)", who: "bob", method: "POST", path: "/v0/node/node-01/power_cycle", status: 401, typ: TypeAuthorization},
	{name: "power cycle free node (non-admin)", who: "alice", method: "POST", path: "/v0/node/node-04/power_cycle", status: 401, typ: TypeAuthorization},
	{name: "power cycle free node (admin)", who: "admin", method: "POST", path: "/v0/node/node-04/power_cycle", status: 200},
	{name: "power cycle unknown node", who: "alice", method: "POST", path: "/v0/node/nope/power_cycle", status: 404, typ: TypeNotFound},
	{name: "power off", who: "alice", method: "POST", path: "/v0/node/node-01/power_off", status: 200, after: calls("PowerOff(node-01)")},
	{name: "power status off", who: "alice", method: "GET", path: "/v0/node/node-01/power_status", status: 200, check: jsonEq(`{"power_status":"Off"}`)},
	{name: "power on", who: "alice", method: "POST", path: "/v0/node/node-01/power_on", status: 200, after: calls("PowerOn(node-01)")},
	{name: "power status on", who: "alice", method: "GET", path: "/v0/node/node-01/power_status", status: 200, check: jsonEq(`{"power_status":"On"}`)},
	{name: "boot device disk", who: "alice", method: "PUT", path: "/v0/node/node-01/boot_device", body: `{"bootdev":"disk"}`, status: 200, after: calls("SetBootDevice(node-01, disk)")},
	{name: "boot device illegal", who: "alice", method: "PUT", path: "/v0/node/node-01/boot_device", body: `{"bootdev":"floppy"}`, status: 400, typ: TypeBadArgument},
	{name: "boot device missing", who: "alice", method: "PUT", path: "/v0/node/node-01/boot_device", body: `{}`, status: 400, typ: TypeValidation},
	// Node metadata (hardware facts).
	{name: "set metadata", who: "admin", method: "PUT", path: "/v0/node/node-02/metadata/cpus", body: `{"value":8}`, status: 200},
	{name: "set metadata (non-admin)", who: "alice", method: "PUT", path: "/v0/node/node-02/metadata/cpus", body: `{"value":8}`, status: 401, typ: TypeAuthorization},
	{name: "set metadata without value", who: "admin", method: "PUT", path: "/v0/node/node-02/metadata/cpus", body: `{}`, status: 400, typ: TypeValidation},
	{name: "set metadata of unknown node", who: "admin", method: "PUT", path: "/v0/node/nope/metadata/cpus", body: `{"value":8}`, status: 404, typ: TypeNotFound},
	{name: "metadata shown", who: "alice", method: "GET", path: "/v0/node/node-02", status: 200,
		check: func(t *testing.T, _ *fixture, b []byte) {
			if !strings.Contains(string(b), `"cpus":"8"`) {
				t.Errorf("node-02: %s, want cpus 8", b)
			}
		}},
	{name: "delete metadata", who: "admin", method: "DELETE", path: "/v0/node/node-01/metadata/rack", status: 200},
	{name: "delete absent metadata", who: "admin", method: "DELETE", path: "/v0/node/node-01/metadata/rack", status: 404, typ: TypeNotFound},
	// Networks a project can use.
	{name: "project networks (member)", who: "alice", method: "GET", path: "/v0/project/tenant-a/networks", status: 200, check: jsonEq(`["bmi-provision","tenant-a-net"]`)},
	{name: "project networks (non-member)", who: "bob", method: "GET", path: "/v0/project/tenant-a/networks", status: 401, typ: TypeAuthorization},
	{name: "list networks (admin)", who: "admin", method: "GET", path: "/v0/networks", status: 200,
		check: jsonEq(`{"bmi-provision":{"network_id":"100","projects":["bmi_infra","tenant-a","tenant-b"]},"public":{"network_id":"300","projects":null},
			"tenant-a-net":{"network_id":"201","projects":["tenant-a"]},"tenant-b-net":{"network_id":"202","projects":["tenant-b"]}}`)},
	{name: "list networks (non-admin)", who: "alice", method: "GET", path: "/v0/networks", status: 401, typ: TypeAuthorization},
	// Network access.
	{name: "grant access (non-owner)", who: "bob", method: "PUT", path: "/v0/network/tenant-a-net/access/tenant-b", status: 401, typ: TypeAuthorization},
	{name: "grant access (owner)", who: "alice", method: "PUT", path: "/v0/network/tenant-a-net/access/tenant-b", status: 200},
	{name: "grant access again", who: "alice", method: "PUT", path: "/v0/network/tenant-a-net/access/tenant-b", status: 409, typ: TypeDuplicate},
	{name: "grant access: unknown project", who: "admin", method: "PUT", path: "/v0/network/tenant-a-net/access/nope", status: 404, typ: TypeNotFound},
	{name: "granted project sees network", who: "bob", method: "GET", path: "/v0/project/tenant-b/networks", status: 200, check: jsonEq(`["bmi-provision","tenant-a-net","tenant-b-net"]`)},
	{name: "revoke owner's access", who: "admin", method: "DELETE", path: "/v0/network/tenant-a-net/access/tenant-a", status: 409, typ: TypeBlocked},
	{name: "revoke access (the project itself)", who: "bob", method: "DELETE", path: "/v0/network/tenant-a-net/access/tenant-b", status: 200},
	{name: "revoke absent access", who: "alice", method: "DELETE", path: "/v0/network/tenant-a-net/access/tenant-b", status: 404, typ: TypeNotFound},
	{name: "revoke access with NICs attached", who: "admin", method: "DELETE", path: "/v0/network/bmi-provision/access/tenant-a", status: 409, typ: TypeBlocked},
	// Admin set-up and tear-down, as the acceptance suite does it.
	{name: "create project (non-admin)", who: "alice", method: "PUT", path: "/v0/project/tenant-c", status: 401, typ: TypeAuthorization},
	{name: "create project", who: "admin", method: "PUT", path: "/v0/project/tenant-c", status: 200},
	{name: "create project again", who: "admin", method: "PUT", path: "/v0/project/tenant-c", status: 409, typ: TypeDuplicate},
	{name: "register node", who: "admin", method: "PUT", path: "/v0/node/node-09", body: obmBody, status: 200},
	{name: "register node again", who: "admin", method: "PUT", path: "/v0/node/node-09", body: obmBody, status: 409, typ: TypeDuplicate},
	{name: "register node without obm", who: "admin", method: "PUT", path: "/v0/node/node-10", body: `{}`, status: 400, typ: TypeValidation},
	{name: "register node (non-admin)", who: "alice", method: "PUT", path: "/v0/node/node-10", body: obmBody, status: 401, typ: TypeAuthorization},
	{name: "register nic", who: "admin", method: "PUT", path: "/v0/node/node-09/nic/eth0", body: `{"macaddr":"52:54:00:00:01:09","port":"tap-node-09"}`, status: 200},
	{name: "register nic again", who: "admin", method: "PUT", path: "/v0/node/node-09/nic/eth0", body: `{"macaddr":"52:54:00:00:01:09"}`, status: 409, typ: TypeDuplicate},
	{name: "register nic: bad MAC", who: "admin", method: "PUT", path: "/v0/node/node-09/nic/eth1", body: `{"macaddr":"52:54:00"}`, status: 400, typ: TypeBadArgument},
	{name: "register nic: unknown node", who: "admin", method: "PUT", path: "/v0/node/nope/nic/eth0", body: `{"macaddr":"52:54:00:00:01:99"}`, status: 404, typ: TypeNotFound},
	{name: "connect node to project", who: "admin", method: "POST", path: "/v0/project/tenant-c/connect_node", body: `{"node":"node-09"}`, status: 200},
	{name: "connect node owned already", who: "admin", method: "POST", path: "/v0/project/tenant-a/connect_node", body: `{"node":"node-09"}`, status: 409, typ: TypeBlocked},
	{name: "create project network (pool VLAN)", who: "admin", method: "PUT", path: "/v0/network/tenant-c-net", body: `{"owner":"tenant-c","access":"tenant-c","net_id":""}`, status: 200},
	{name: "pool VLAN allocated", who: "admin", method: "GET", path: "/v0/network/tenant-c-net", status: 200,
		check: jsonEq(`{"name":"tenant-c-net","owner":"tenant-c","access":["tenant-c"],"channels":["vlan/native","vlan/1000"],"connected-nodes":{}}`)},
	{name: "create network: VLAN in use", who: "admin", method: "PUT", path: "/v0/network/dup-vlan", body: `{"owner":"admin","access":"","net_id":"100"}`, status: 400, typ: TypeBadArgument},
	{name: "create network: project net with net_id", who: "admin", method: "PUT", path: "/v0/network/bad", body: `{"owner":"tenant-c","access":"tenant-c","net_id":"500"}`, status: 400, typ: TypeBadArgument},
	{name: "create network: unknown owner", who: "admin", method: "PUT", path: "/v0/network/bad", body: `{"owner":"nope","access":"nope","net_id":""}`, status: 404, typ: TypeNotFound},
	{name: "create network again", who: "admin", method: "PUT", path: "/v0/network/tenant-a-net", body: `{"owner":"admin","access":"","net_id":"501"}`, status: 409, typ: TypeDuplicate},
	{name: "create user", who: "admin", method: "PUT", path: "/v0/auth/basic/user/carol", body: `{"password":"carol-secret"}`, status: 200},
	{name: "create user again", who: "admin", method: "PUT", path: "/v0/auth/basic/user/carol", body: `{"password":"x"}`, status: 409, typ: TypeDuplicate},
	{name: "new user, no project yet", who: "carol", method: "GET", path: "/v0/project/tenant-c/nodes", status: 401, typ: TypeAuthorization},
	{name: "add user to project", who: "admin", method: "POST", path: "/v0/auth/basic/user/carol/add_project", body: `{"project":"tenant-c"}`, status: 200},
	{name: "add user to project again", who: "admin", method: "POST", path: "/v0/auth/basic/user/carol/add_project", body: `{"project":"tenant-c"}`, status: 409, typ: TypeDuplicate},
	{name: "add user to unknown project", who: "admin", method: "POST", path: "/v0/auth/basic/user/carol/add_project", body: `{"project":"nope"}`, status: 404, typ: TypeNotFound},
	{name: "new member sees project", who: "carol", method: "GET", path: "/v0/project/tenant-c/nodes", status: 200, check: jsonEq(`["node-09"]`)},
	{name: "set own admin flag", who: "admin", method: "PATCH", path: "/v0/auth/basic/user/hiladmin", body: `{"is_admin":false}`, status: 409, typ: TypeIllegalState},
	{name: "delete node in a project", who: "admin", method: "DELETE", path: "/v0/node/node-09", status: 409, typ: TypeBlocked},
	{name: "detach node from other project", who: "admin", method: "POST", path: "/v0/project/tenant-a/detach_node", body: `{"node":"node-09"}`, status: 404, typ: TypeNotFound},
	{name: "detach node attached to a network", who: "alice", method: "POST", path: "/v0/project/tenant-a/detach_node", body: `{"node":"node-01"}`, status: 409, typ: TypeBlocked},
	{name: "detach node from project", who: "carol", method: "POST", path: "/v0/project/tenant-c/detach_node", body: `{"node":"node-09"}`, status: 200},
	{name: "delete node with nics", who: "admin", method: "DELETE", path: "/v0/node/node-09", status: 409, typ: TypeBlocked},
	{name: "delete nic", who: "admin", method: "DELETE", path: "/v0/node/node-09/nic/eth0", status: 200},
	{name: "delete unknown nic", who: "admin", method: "DELETE", path: "/v0/node/node-09/nic/eth0", status: 404, typ: TypeNotFound},
	{name: "delete node", who: "admin", method: "DELETE", path: "/v0/node/node-09", status: 200},
	{name: "deleted node is gone", who: "admin", method: "GET", path: "/v0/node/node-09", status: 404, typ: TypeNotFound},
	{name: "delete project with networks", who: "admin", method: "DELETE", path: "/v0/project/tenant-c", status: 409, typ: TypeBlocked},
	{name: "delete network", who: "carol", method: "DELETE", path: "/v0/network/tenant-c-net", status: 200},
	{name: "delete project", who: "admin", method: "DELETE", path: "/v0/project/tenant-c", status: 200},
	{name: "delete user", who: "admin", method: "DELETE", path: "/v0/auth/basic/user/carol", status: 200},
	{name: "deleted user refused", who: "carol", method: "GET", path: "/v0/nodes/free", status: 401, typ: TypeAuthorization},
	{name: "delete unknown user", who: "admin", method: "DELETE", path: "/v0/auth/basic/user/carol", status: 404, typ: TypeNotFound},
}

// TestContract runs the contract table in order against hil-mock over real
// HTTP on loopback. With -v it logs one "contract|" line per row: the
// table in the [hil] report.
func TestContract(t *testing.T) {
	f := startFixture(t, "", true)
	for i, row := range contract {
		ok := t.Run(fmt.Sprintf("%03d %s", i, row.name), func(t *testing.T) {
			if row.before != nil {
				row.before(f)
			}
			path := strings.ReplaceAll(row.path, "{id}", lastID)
			status, body := f.call(row.who, row.method, path, row.body)
			if status != row.status {
				t.Fatalf("%s %s as %s: status %d (%s), want %d", row.method, path, row.who, status, body, row.status)
			}
			if row.typ != "" {
				var e apiError
				if err := json.Unmarshal(body, &e); err != nil || e.Type != row.typ || e.Msg == "" {
					t.Fatalf("%s %s: body %s, want {\"type\": %q, \"msg\": ...}", row.method, path, body, row.typ)
				}
			}
			if row.check != nil {
				row.check(t, f, body)
			}
			if row.after != nil {
				row.after(t, f)
			}
		})
		want := fmt.Sprint(row.status)
		if row.typ != "" {
			want += " " + row.typ
		}
		res := "pass"
		if !ok {
			res = "FAIL"
		}
		t.Logf("contract| %s | `%s %s` as %s | %s | %s |", row.name, row.method, row.path, row.who, want, res)
	}
}
