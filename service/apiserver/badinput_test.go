package apiserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/apiserver/apitest"
	"github.com/bmi-go/bmi/service/core"
)

// state digests every row and the exported targets.
func state(t *testing.T, e *apitest.Env) string {
	t.Helper()
	rows, err := e.DB.Images(context.Background(), core.ImageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := e.DB.Projects(context.Background())
	return fmt.Sprint(rows, ps, e.Exported())
}

// TestBadInput: malformed requests get a 4xx JSON error and change nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t, true)
	big := `{"name":"` + strings.Repeat("a", 5000) + `"}`
	cases := map[string]struct {
		method, path, user, body string
		ct                       string
		status                   int
		kind                     string
	}{
		"no credentials":      {"GET", "/api/v1/projects/tenant-a/images", "", "", "", 401, "unauthenticated"},
		"wrong password":      {"GET", "/api/v1/projects/tenant-a/images", "wrong", "", "", 401, "unauthenticated"},
		"malformed json":      {"POST", "/api/v1/projects", "admin", `{"name":`, "application/json", 400, "invalid"},
		"unknown field":       {"POST", "/api/v1/projects", "admin", `{"name":"x","admin":true}`, "application/json", 400, "invalid"},
		"trailing data":       {"POST", "/api/v1/projects", "admin", `{"name":"x"} {"name":"y"}`, "application/json", 400, "invalid"},
		"wrong type":          {"POST", "/api/v1/projects", "admin", `{"name":5}`, "application/json", 400, "invalid"},
		"array body":          {"POST", "/api/v1/projects", "admin", `["x"]`, "application/json", 400, "invalid"},
		"empty body":          {"POST", "/api/v1/projects", "admin", ``, "application/json", 400, "invalid"},
		"oversized":           {"POST", "/api/v1/projects", "admin", big, "application/json", 400, "invalid"},
		"not json":            {"POST", "/api/v1/projects", "admin", `name=x`, "application/x-www-form-urlencoded", 400, "invalid"},
		"missing field":       {"POST", "/api/v1/projects/tenant-a/disks", "alice", `{"image":"debian"}`, "application/json", 400, "invalid"},
		"bad project name":    {"POST", "/api/v1/projects", "admin", `{"name":"../etc"}`, "application/json", 400, "invalid"},
		"bad name in path":    {"GET", "/api/v1/projects/-x/images", "alice", "", "", 400, "invalid"},
		"long name in path":   {"DELETE", "/api/v1/projects/tenant-a/images/" + strings.Repeat("a", 65), "alice", "", "", 400, "invalid"},
		"empty import name":   {"POST", "/api/v1/projects/tenant-a/imports", "alice", `{"source":"x","name":""}`, "application/json", 400, "invalid"},
		"empty copy name":     {"POST", "/api/v1/projects/tenant-a/images/debian/copy", "alice", `{"dest_project":"tenant-a","name":" "}`, "application/json", 400, "invalid"},
		"empty dest project":  {"POST", "/api/v1/projects/tenant-a/images/debian/copy", "alice", `{"dest_project":""}`, "application/json", 400, "invalid"},
		"empty project name":  {"POST", "/api/v1/projects", "admin", `{"name":""}`, "application/json", 400, "invalid"},
		"bad disk name":       {"POST", "/api/v1/projects/tenant-a/disks", "alice", `{"image":"debian","name":"a b"}`, "application/json", 400, "invalid"},
		"bad node name":       {"PUT", "/api/v1/projects/tenant-a/nodes/no%20de/boot", "alice", `{"disk":"x","nic":"eth0"}`, "application/json", 400, "invalid"},
		"bad op id":           {"GET", "/api/v1/operations/a%2Fb", "admin", "", "", 404, "not_found"},
		"wrong method":        {"PATCH", "/api/v1/projects", "admin", "", "", 405, "invalid"},
		"no route":            {"GET", "/api/v1/nothing", "admin", "", "", 404, "not_found"},
		"trailing slash":      {"GET", "/api/v1/projects/", "admin", "", "", 404, "not_found"},
		"forbidden":           {"DELETE", "/api/v1/projects/tenant-a/images/debian", "bob", "", "", 403, "forbidden"},
		"import not admin":    {"POST", "/api/v1/projects/tenant-a/imports", "alice", `{"source":"golden","name":"z"}`, "application/json", 403, "forbidden"},
		"bad size":            {"PUT", "/api/v1/projects/tenant-a/images/u/data?size=-1", "alice", "abc", "application/octet-stream", 400, "invalid"},
		"size mismatch":       {"PUT", "/api/v1/projects/tenant-a/images/u/data?size=10", "alice", "abc", "application/octet-stream", 400, "invalid"},
		"snapshot of image":   {"POST", "/api/v1/projects/tenant-a/snapshots", "alice", `{"disk":"debian","name":"s"}`, "application/json", 400, "invalid"},
		"reconcile bad body":  {"POST", "/api/v1/reconcile", "admin", `{"fix":"yes"}`, "application/json", 400, "invalid"},
		"copy to nowhere":     {"POST", "/api/v1/projects/tenant-a/images/debian/copy", "admin", `{"dest_project":"nope"}`, "application/json", 404, "not_found"},
		"provision bad nic":   {"POST", "/api/v1/projects/tenant-a/nodes/node1/provision", "alice", `{"image":"debian","nic":"eth9"}`, "application/json", 404, "not_found"},
		"provision other's":   {"POST", "/api/v1/projects/tenant-a/nodes/node3/provision", "alice", `{"image":"debian","nic":"eth0"}`, "application/json", 403, "forbidden"},
		"deprovision bad nic": {"DELETE", "/api/v1/projects/tenant-a/nodes/node1/provision?nic=a%20b", "alice", "", "", 400, "invalid"},
	}
	before := state(t, e)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.Server.URL+tc.path, strings.NewReader(tc.body))
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			if u, ok := users[tc.user]; ok {
				req.SetBasicAuth(u[0], u[1])
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var b strings.Builder
			_, _ = fmt.Fprint(&b, readAll(res))
			if res.StatusCode != tc.status || errKind(b.String()) != tc.kind {
				t.Fatalf("%d %s, want %d %s", res.StatusCode, b.String(), tc.status, tc.kind)
			}
			if tc.status == 401 && res.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if after := state(t, e); after != before {
		t.Fatalf("bad input changed the state:\n%s\n%s", before, after)
	}
}

func readAll(res *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}
