package apiserver_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/boot"
)

// TestNodeTimeline reads a node's boot timeline: only its project may,
// only while it has a boot config, and never with a URL's token.
func TestNodeTimeline(t *testing.T) {
	e := newEnv(t, true)
	const p = "/api/v1/projects/tenant-a"
	for _, s := range []step{
		{"POST", p + "/disks", "alice", `{"image":"debian","name":"d1"}`, 201, ""},
		{"PUT", p + "/nodes/node2/boot", "alice", `{"disk":"d1","nic":"eth0"}`, 200, ""},
	} {
		if r := call(t, e, s.method, s.path, s.user, s.body); r.status != s.status {
			t.Fatalf("%s %s: %d %s", s.method, s.path, r.status, r.body)
		}
	}
	mac, _ := net.ParseMAC("52:54:00:00:00:02")
	other, _ := net.ParseMAC("52:54:00:00:00:03")
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e.Timeline.Record(ctx, boot.Event{MAC: mac, At: at, Step: boot.StepAck, Client: boot.ClientPXE, Detail: "10.0.0.5 undionly.kpxe"})
	e.Timeline.Record(ctx, boot.Event{MAC: mac, At: at.Add(time.Second), Step: boot.StepAck, Client: boot.ClientIPXE,
		Detail: "10.0.0.5 http://10.0.0.1/boot/52-54-00-00-00-02.ipxe?token=s3cret"})
	e.Timeline.Record(ctx, boot.Event{MAC: mac, At: at.Add(3 * time.Second), Step: boot.StepLogin, Client: boot.ClientIPXE,
		Remote: "10.0.0.5", Initiator: "iqn.x:node2", Session: "40002723abcd"})
	e.Timeline.Record(ctx, boot.Event{MAC: other, At: at, Step: boot.StepDiscover})

	const path = p + "/nodes/node2/timeline"
	r := call(t, e, "GET", path, "alice", "")
	if r.status != 200 {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	conform(t, "GET", path, "", "", r.status, r.header, r.body)
	if strings.Contains(r.body, "s3cret") {
		t.Fatalf("the timeline holds the script token: %s", r.body)
	}
	var tl api.NodeTimeline
	if err := json.Unmarshal([]byte(r.body), &tl); err != nil {
		t.Fatal(err)
	}
	if tl.Node != "node2" || tl.Project != "tenant-a" || tl.MAC != "52:54:00:00:00:02" || len(tl.Events) != 3 {
		t.Fatalf("timeline %+v, want node2's 3 events", tl)
	}
	if ev := tl.Events[2]; ev.Step != "iscsi-login" || ev.Client != "ipxe" || ev.Session != "40002723abcd" ||
		ev.Remote != "10.0.0.5" || !ev.At.Equal(at.Add(3*time.Second)) {
		t.Errorf("login event %+v", ev)
	}
	for _, s := range []step{
		{"GET", path, "bob", "", 403, "forbidden"},
		{"GET", path, "", "", 401, ""},
		{"GET", p + "/nodes/node1/timeline", "alice", "", 404, "not_found"}, // no boot config
		{"GET", "/api/v1/projects/tenant-b/nodes/node2/timeline", "bob", "", 404, "not_found"},
	} {
		if r := call(t, e, s.method, s.path, s.user, s.body); r.status != s.status {
			t.Errorf("%s %s as %q: %d, want %d (%s)", s.method, s.path, s.user, r.status, s.status, r.body)
		}
	}
}
