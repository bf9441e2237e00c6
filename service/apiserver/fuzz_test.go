package apiserver_test

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzJSONBodies sends arbitrary bodies to every route that decodes one,
// through the whole stack (real core on SQLite): no input may make the
// server fail (5xx) or answer an error that is not the JSON error body.
func FuzzJSONBodies(f *testing.F) {
	routes := []struct{ method, path string }{
		{"POST", "/api/v1/projects"},
		{"POST", "/api/v1/projects/tenant-a/imports"},
		{"POST", "/api/v1/projects/tenant-a/images/debian/copy"},
		{"POST", "/api/v1/projects/tenant-a/images/debian/move"},
		{"POST", "/api/v1/projects/tenant-a/images/debian/export"},
		{"POST", "/api/v1/projects/tenant-a/snapshots"},
		{"POST", "/api/v1/projects/tenant-a/disks"},
		{"PUT", "/api/v1/projects/tenant-a/nodes/node1/boot"},
		{"POST", "/api/v1/projects/tenant-a/nodes/node1/provision"},
		{"POST", "/api/v1/reconcile"},
	}
	for i := range routes {
		for _, s := range []string{`{"name":"x"}`, `{"source":"golden","name":"y"}`, `{"dest_project":"tenant-b"}`,
			`{"image":"debian","name":"d"}`, `{"disk":"d","nic":"eth0"}`, `{"fix":true}`, `{`, `[]`, `{"name":"\u00e9"}`} {
			f.Add(uint8(i), s)
		}
	}
	e := newEnv(f, true)
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		r := routes[int(route)%len(routes)]
		req, _ := http.NewRequest(r.method, e.Server.URL+r.path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("admin", "adminpw")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := readAll(res)
		res.Body.Close()
		if res.StatusCode >= 500 {
			t.Fatalf("%s %s %q: %d %s", r.method, r.path, body, res.StatusCode, b)
		}
		if res.StatusCode >= 400 && errKind(b) == "" {
			t.Fatalf("%s %s %q: %d without a JSON error: %s", r.method, r.path, body, res.StatusCode, b)
		}
	})
}
