package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/core"
)

// step is one request of a scenario and what it must answer.
type step struct {
	method, path, user, body string
	status                   int
	want                     string // a substring of the body, or an error kind for JSON errors
}

func runSteps(t *testing.T, steps []step) {
	e := newEnv(t, true)
	for i, s := range steps {
		r := call(t, e, s.method, s.path, s.user, s.body)
		if r.status != s.status {
			t.Fatalf("step %d: %s %s as %q: status %d, want %d; body %s", i, s.method, s.path, s.user, r.status, s.status, r.body)
		}
		if s.want != "" && !strings.Contains(r.body, s.want) && errKind(r.body) != s.want {
			t.Fatalf("step %d: %s %s: body %s does not contain %q", i, s.method, s.path, r.body, s.want)
		}
		if r.header.Get(api.RequestIDHeader) == "" {
			t.Fatalf("step %d: no request id header", i)
		}
		ct := ""
		if s.body != "" {
			ct = "application/json"
		}
		conform(t, s.method, s.path, ct, s.body, r.status, r.header, r.body)
	}
}

// TestJSONRoutes drives every JSON route through a life cycle against a
// real core and state store.
func TestJSONRoutes(t *testing.T) {
	const p = "/api/v1/projects"
	runSteps(t, []step{
		{"GET", p, "admin", "", 200, `"name":"tenant-a"`},
		{"GET", p, "alice", "", 403, "forbidden"},
		{"POST", p, "admin", `{"name":"tenant-c"}`, 201, `"name":"tenant-c"`},
		{"POST", p, "admin", `{"name":"tenant-c"}`, 409, "exists"},
		{"DELETE", p + "/tenant-c", "admin", "", 204, ""},
		{"DELETE", p + "/tenant-c", "admin", "", 404, "not_found"},
		{"GET", p + "/tenant-a/images", "alice", "", 200, `"name":"debian"`},
		{"GET", p + "/tenant-a/images", "bob", "", 403, "forbidden"},
		{"GET", p + "/tenant-a/images/debian", "alice", "", 200, `"kind":"image"`},
		{"GET", p + "/tenant-a/images/nope", "alice", "", 404, "not_found"},
		{"POST", p + "/tenant-a/imports", "alice", `{"source":"golden","name":"deb2"}`, 403, "forbidden"},
		{"POST", p + "/tenant-a/imports", "admin", `{"source":"golden","name":"deb2"}`, 201, `"name":"deb2"`},
		{"POST", p + "/tenant-a/imports", "admin", `{"source":"missing"}`, 404, "not_found"},
		{"POST", p + "/tenant-a/images/deb2/copy", "admin", `{"dest_project":"tenant-b","name":"deb3"}`, 201, `"project":"tenant-b"`},
		{"POST", p + "/tenant-b/images/deb3/move", "admin", `{"dest_project":"tenant-b","name":"deb4"}`, 200, `"name":"deb4"`},
		{"POST", p + "/tenant-b/images/deb4/export", "admin", `{"dest":"exported"}`, 204, ""},
		{"POST", p + "/tenant-b/images/deb4/export", "admin", `{"dest":"exported"}`, 409, "exists"},
		{"DELETE", p + "/tenant-b/images/deb4", "bob", "", 204, ""},
		{"DELETE", p + "/tenant-a/images/deb2", "alice", "", 204, ""},
		{"POST", p + "/tenant-a/disks", "alice", `{"image":"debian","name":"d1"}`, 201, `"iqn":"iqn.2026-11.org.bmi:t1.`},
		{"POST", p + "/tenant-a/disks", "alice", `{"image":"debian","name":"d1"}`, 409, "exists"},
		{"GET", p + "/tenant-a/disks", "alice", "", 200, `"name":"d1"`},
		{"GET", p + "/tenant-a/disks/d1", "alice", "", 200, `"kind":"disk"`},
		{"GET", p + "/tenant-a/disks/d9", "alice", "", 404, "not_found"},
		{"GET", p + "/tenant-a/targets", "alice", "", 200, `"exported":true`},
		{"DELETE", p + "/tenant-a/targets/d1", "alice", "", 204, ""},
		{"GET", p + "/tenant-a/targets", "alice", "", 200, `"exported":false`},
		{"PUT", p + "/tenant-a/targets/d1", "alice", "", 200, `"iqn"`},
		{"GET", "/api/v1/targets", "admin", "", 200, `"disk":"d1"`},
		{"GET", "/api/v1/targets", "alice", "", 403, "forbidden"},
		{"PUT", p + "/tenant-a/nodes/node2/boot", "alice", `{"disk":"d1","nic":"eth0"}`, 200, `"mac":"52:54:00:00:00:02"`},
		{"PUT", p + "/tenant-a/nodes/node3/boot", "alice", `{"disk":"d1","nic":"eth0"}`, 403, "forbidden"},
		{"GET", p + "/tenant-a/nodes/node2/boot", "alice", "", 200, `"disk":"d1"`},
		{"GET", p + "/tenant-a/nodes", "alice", "", 200, `"node":"node2"`},
		{"DELETE", p + "/tenant-a/disks/d1", "alice", "", 409, "conflict"},
		{"DELETE", p + "/tenant-a/nodes/node2/boot", "alice", "", 204, ""},
		{"GET", p + "/tenant-a/nodes/node2/boot", "alice", "", 404, "not_found"},
		{"POST", p + "/tenant-a/snapshots", "alice", `{"disk":"d1","name":"snap1"}`, 201, `"kind":"snapshot"`},
		{"GET", p + "/tenant-a/snapshots", "alice", "", 200, `"name":"snap1"`},
		{"DELETE", p + "/tenant-a/snapshots/debian", "alice", "", 400, "invalid"},
		{"DELETE", p + "/tenant-a/snapshots/snap1", "alice", "", 204, ""},
		{"DELETE", p + "/tenant-a/disks/d1", "alice", "", 204, ""},
		{"POST", p + "/tenant-a/nodes/node1/provision", "alice", `{"image":"debian","nic":"eth0"}`, 201, `"name":"node1"`},
		{"POST", p + "/tenant-a/nodes/node1/provision", "alice", `{"image":"debian","nic":"eth0"}`, 409, "conflict"},
		{"GET", p + "/tenant-a/nodes/node1/ip?nic=eth0", "alice", "", 404, "not_found"},
		{"GET", p + "/tenant-a/nodes/node1/ip", "alice", "", 400, "invalid"},
		{"DELETE", p + "/tenant-a/nodes/node1/provision?nic=eth1", "alice", "", 400, "invalid"},
		{"DELETE", p + "/tenant-a/nodes/node1/provision?nic=eth0", "alice", "", 204, ""},
		{"DELETE", p + "/tenant-a/nodes/node1/provision", "alice", "", 404, "not_found"},
		{"GET", "/api/v1/operations?state=done&limit=5", "admin", "", 200, `"state":"done"`},
		{"GET", "/api/v1/operations?state=bogus", "admin", "", 400, "invalid"},
		{"GET", "/api/v1/operations?limit=0", "admin", "", 400, "invalid"},
		{"GET", "/api/v1/operations", "alice", "", 403, "forbidden"},
		{"GET", "/api/v1/operations/0123456789abcdef", "admin", "", 404, "not_found"},
		{"GET", "/api/v1/db/images?kind=image&project=tenant-a", "admin", "", 200, `"name":"debian"`},
		{"GET", "/api/v1/db/images?kind=bogus", "admin", "", 400, "invalid"},
		{"GET", "/api/v1/db/images?public=maybe", "admin", "", 400, "invalid"},
		{"POST", "/api/v1/reconcile", "admin", `{"fix":false}`, 200, `"fixed":false`},
		{"POST", "/api/v1/reconcile", "admin", "", 200, `"recovered":0`},
		{"POST", "/api/v1/reconcile", "alice", "", 403, "forbidden"},
		{"DELETE", p + "/tenant-a", "admin", "", 409, "conflict"},
		{"DELETE", p + "/tenant-a?force=true", "admin", "", 204, ""},
		{"DELETE", p + "/tenant-b?force=maybe", "admin", "", 400, "invalid"},
	})
}

// TestOperationLookup reads an operation a request reported in its header.
func TestOperationLookup(t *testing.T) {
	e := newEnv(t, true)
	r := call(t, e, "POST", "/api/v1/projects/tenant-a/images/debian/copy", "alice", `{"dest_project":"tenant-a","name":"c1"}`)
	if r.status != 201 {
		t.Fatalf("copy: %d %s", r.status, r.body)
	}
	id := r.header.Get(api.OperationHeader)
	if id == "" {
		t.Fatal("no operation header")
	}
	r = call(t, e, "GET", "/api/v1/operations/"+id, "alice", "")
	var op api.Operation
	if err := json.Unmarshal([]byte(r.body), &op); err != nil || r.status != 200 {
		t.Fatalf("op: %d %s", r.status, r.body)
	}
	if op.Kind != "copy" || op.State != api.OpDone || len(op.Steps) == 0 || op.Progress != 1 {
		t.Fatalf("op %+v", op)
	}
	if r := call(t, e, "GET", "/api/v1/operations/"+id, "bob", ""); r.status != 403 {
		t.Fatalf("bob reads alice's op: %d", r.status)
	}
}

// TestAsync starts long operations with wait=false and polls them.
func TestAsync(t *testing.T) {
	e := newEnv(t, true)
	cases := map[string]struct{ path, body string }{
		"import":    {"/api/v1/projects/tenant-a/imports?wait=false", `{"source":"golden","name":"g2"}`},
		"copy":      {"/api/v1/projects/tenant-a/images/debian/copy?wait=false", `{"dest_project":"tenant-a","name":"g3"}`},
		"provision": {"/api/v1/projects/tenant-a/nodes/node2/provision?wait=false", `{"image":"debian","nic":"eth0"}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := call(t, e, "POST", tc.path, "admin", tc.body)
			if r.status != http.StatusAccepted && r.status != http.StatusCreated {
				t.Fatalf("%d %s", r.status, r.body)
			}
			conform(t, "POST", tc.path, "application/json", tc.body, r.status, r.header, r.body)
			id := r.header.Get(api.OperationHeader)
			deadline := time.Now().Add(10 * time.Second)
			for {
				r := call(t, e, "GET", "/api/v1/operations/"+id, "admin", "")
				var op api.Operation
				_ = json.Unmarshal([]byte(r.body), &op)
				if op.Finished() {
					if op.State != api.OpDone {
						t.Fatalf("op %+v", op)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("operation %s still %s", id, op.State)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	// A refusal before the journal is an error, not a 202.
	r := call(t, e, "POST", "/api/v1/projects/tenant-a/imports?wait=false", "admin", `{"source":"missing"}`)
	if r.status != 404 {
		t.Fatalf("async import of a missing image: %d %s", r.status, r.body)
	}
	if r := call(t, e, "POST", "/api/v1/projects/tenant-a/imports?wait=maybe", "admin", `{"source":"golden"}`); r.status != 400 {
		t.Fatalf("wait=maybe: %d", r.status)
	}
}

// TestUploadDownload streams an image in and out.
func TestUploadDownload(t *testing.T) {
	e := newEnv(t, true)
	data := strings.Repeat("x", 10000)
	r := call(t, e, "PUT", "/api/v1/projects/tenant-a/images/up1/data", "alice", "")
	if r.status != 400 || errKind(r.body) != "invalid" {
		t.Fatalf("upload without a body: %d %s", r.status, r.body)
	}
	// wait=false is ignored: the body is the image.
	req, _ := http.NewRequest("PUT", e.Server.URL+"/api/v1/projects/tenant-a/images/up1/data?wait=false", strings.NewReader(data))
	req.SetBasicAuth("alice", "alicepw")
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 || res.Header.Get(api.OperationHeader) == "" {
		t.Fatalf("upload: %d", res.StatusCode)
	}
	im, err := e.Core.ShowImage(context.Background(), core.Principal{User: "alice", Password: "alicepw"}, "tenant-a", "up1")
	if err != nil || im.Size != 10000 {
		t.Fatalf("uploaded image %+v, %v", im, err)
	}
	got := call(t, e, "GET", "/api/v1/projects/tenant-a/images/up1/data", "alice", "")
	if got.status != 200 || got.body != data || got.header.Get("Content-Length") != "10000" {
		t.Fatalf("download: %d, %d bytes, length %s", got.status, len(got.body), got.header.Get("Content-Length"))
	}
	if r := call(t, e, "GET", "/api/v1/projects/tenant-a/images/nope/data", "alice", ""); r.status != 404 {
		t.Fatalf("download of a missing image: %d", r.status)
	}
	if r := call(t, e, "GET", "/api/v1/projects/tenant-a/images/up1/data", "bob", ""); r.status != 403 {
		t.Fatalf("bob downloads: %d", r.status)
	}
	// A body shorter than its announced size leaves nothing.
	req, _ = http.NewRequest("PUT", e.Server.URL+"/api/v1/projects/tenant-a/images/up2/data?size=100", strings.NewReader("short"))
	req.SetBasicAuth("alice", "alicepw")
	req.ContentLength = -1
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Fatalf("short upload: %d", res.StatusCode)
	}
	if _, err := e.Core.ShowImage(context.Background(), core.Principal{User: "alice", Password: "alicepw"}, "tenant-a", "up2"); err == nil {
		t.Fatal("short upload left an image")
	}
}

// TestOperationMetrics: long operations are counted by kind and outcome.
func TestOperationMetrics(t *testing.T) {
	e := newEnv(t, true)
	call(t, e, "POST", "/api/v1/projects/tenant-a/images/debian/copy", "alice", `{"dest_project":"tenant-a","name":"m1"}`)
	call(t, e, "POST", "/api/v1/projects/tenant-a/images/debian/copy", "alice", `{"dest_project":"tenant-a","name":"m1"}`)
	r := call(t, e, "GET", "/metrics", "", "")
	for _, want := range []string{
		`bmi_api_operations_total{kind="copy",outcome="ok"} 1`,
		`bmi_api_operations_total{kind="copy",outcome="exists"} 1`,
		`bmi_api_requests_total{code="201",method="POST",route="/api/v1/projects/:project/images/:image/copy"} 1`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
