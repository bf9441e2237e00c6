package apiserver_test

import (
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/apiserver/apitest"
)

// legacy sends a form request the way the original's CLI did: the
// Authorization header's second token is base64("user:password").
func legacy(t *testing.T, e *apitest.Env, method, path, auth, form string) resp {
	t.Helper()
	req, err := http.NewRequest(method, e.Server.URL+path, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(auth)))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

var update = flag.Bool("update", false, "rewrite testdata/legacy.golden (then check every answer against the original's by hand)")

// TestLegacyRoutes checks the original's endpoints, in the order an old
// script would call them, byte for byte against testdata/legacy.golden:
// the answers the original's Flask application gave (reference §4, §8.1):
// "Success" and json.dumps bodies (Python's ", " spacing), the BMI error
// message as the body with the original's status code, Werkzeug's HTML
// pages for a missing form field (400), an unknown path (404) and a wrong
// method (405 with Allow), all as text/html; charset=utf-8.
func TestLegacyRoutes(t *testing.T) {
	e := newEnv(t, true)
	const alice = "alice:alicepw"
	steps := []struct {
		method, path, auth, form string
		status                   int
	}{
		{"POST", "/list_images/", "", "project=tenant-a", 400},
		{"POST", "/list_images/", alice, "", 400},
		{"GET", "/list_images/", alice, "project=tenant-a", 405},
		{"OPTIONS", "/list_images/", "", "", 200},
		{"POST", "/list_images/", alice, "project=tenant-a", 200},
		{"POST", "/list_images/", alice, "project=nope", 401},
		{"POST", "/list_images/", "admin:adminpw", "project=nope", 404},
		{"POST", "/list_images/", "alice:wrong", "project=tenant-a", 401},
		{"POST", "/list_snapshots/", alice, "project=tenant-a", 200},
		{"PUT", "/provision/", alice, "project=tenant-a&node=node1&img=debian", 400},
		{"POST", "/provision/", alice, "project=tenant-a&node=node1&img=debian&nic=eth0", 405},
		{"PUT", "/provision/", alice, "project=tenant-a&node=node1&img=nope&nic=eth0", 404},
		{"PUT", "/provision/", alice, "project=tenant-a&node=node1&img=debian&network=provnet&nic=eth0", 400},
		{"PUT", "/provision/", alice, "project=tenant-a&node=node1&img=debian&nic=eth0", 200},
		{"PUT", "/provision/", alice, "project=tenant-a&node=node1&img=debian&nic=eth0", 500},
		{"PUT", "/create_snapshot/", alice, "project=tenant-a&node=node1&snap_name=s1", 200},
		{"POST", "/list_snapshots/", alice, "project=tenant-a", 200},
		{"PUT", "/create_snapshot/", alice, "project=tenant-a&node=node1", 400},
		{"DELETE", "/deprovision/", alice, "project=tenant-a&node=node1", 400},
		{"DELETE", "/deprovision/", alice, "project=tenant-a&node=node1&nic=eth0", 200},
		{"DELETE", "/deprovision/", alice, "project=tenant-a&node=node1&nic=eth0", 404},
		{"DELETE", "/remove_image/", alice, "project=tenant-a&img=s1", 200},
		{"DELETE", "/remove_image/", alice, "project=tenant-a&img=s1", 404},
		{"DELETE", "/remove_image/", alice, "project=tenant-a", 400},
		{"PUT", "/create_disk", alice, "project=tenant-a&disk_name=d1&img=debian", 200},
		{"PUT", "/create_disk", alice, "project=tenant-a&disk_name=d1&img=debian", 409},
		{"PUT", "/provision/", alice, "project=tenant-a&node=node2&disk_name=d1&nic=eth0", 200},
		{"DELETE", "/delete_disk", alice, "project=tenant-a&disk_name=d1", 500},
		{"DELETE", "/deprovision/", alice, "project=tenant-a&node=node2&nic=eth0", 200},
		{"PUT", "/create_snapshot/", alice, "project=tenant-a&disk_name=d1&snap_name=s2", 200},
		{"DELETE", "/delete_disk", alice, "project=tenant-a&disk_name=d1", 200},
		{"DELETE", "/delete_disk", alice, "project=tenant-a&disk_name=d1", 404},
		{"PUT", "/delete_disk", alice, "project=tenant-a&disk_name=d1", 405},
		{"DELETE", "/delete_disk", alice, "project=tenant-a", 400},
		{"POST", "/no_such_thing/", alice, "project=tenant-a", 404},
		{"POST", "/list_images", alice, "project=tenant-a", 200}, // 308 to /list_images/, followed
	}
	var got strings.Builder
	for i, s := range steps {
		r := legacy(t, e, s.method, s.path, s.auth, s.form)
		fmt.Fprintf(&got, "> %s %s %s\n< %d\n< Content-Type: %s\n", s.method, s.path, s.form, r.status, r.header.Get("Content-Type"))
		if a := r.header.Get("Allow"); a != "" {
			fmt.Fprintf(&got, "< Allow: %s\n", a)
		}
		fmt.Fprintf(&got, "%s\n\n", r.body)
		if r.status != s.status {
			t.Errorf("step %d: %s %s %q: %d %q, want %d", i, s.method, s.path, s.form, r.status, r.body, s.status)
		}
		if s.path != "/no_such_thing/" && s.path != "/list_images" && r.status != 405 {
			conform(t, s.method, s.path, "application/x-www-form-urlencoded", s.form, r.status, r.header, r.body)
		}
	}
	path := filepath.Join("testdata", "legacy.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got.String() {
		t.Fatalf("legacy answers differ from %s:\n%s", path, firstDiff(string(want), got.String()))
	}
}

// firstDiff shows the first line where got differs from want.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\nwant %q\ngot  %q", i+1, a, b)
		}
	}
	return ""
}

// TestLegacyBadInput: a JSON body, a malformed Authorization and an
// oversized form are refused with plain text, and nothing changes.
func TestLegacyBadInput(t *testing.T) {
	e := newEnv(t, true)
	cases := map[string]struct {
		ct, auth, body string
		status         int
	}{
		"json body":          {"application/json", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alicepw")), `{"project":"tenant-a"}`, 400},
		"auth not base64":    {"application/x-www-form-urlencoded", "Basic !!!", "project=tenant-a&img=debian", 401},
		"auth one token":     {"application/x-www-form-urlencoded", "Basic", "project=tenant-a&img=debian", 401},
		"auth without colon": {"application/x-www-form-urlencoded", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice")), "project=tenant-a&img=debian", 401},
		"oversized":          {"application/x-www-form-urlencoded", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alicepw")), "project=tenant-a&img=debian&x=" + strings.Repeat("a", 5000), 400},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("DELETE", e.Server.URL+"/remove_image/", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ct)
			req.Header.Set("Authorization", tc.auth)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status || strings.HasPrefix(string(b), "{") {
				t.Fatalf("%d %s", res.StatusCode, b)
			}
			if r := call(t, e, "GET", "/api/v1/projects/tenant-a/images/debian", "alice", ""); r.status != 200 {
				t.Fatal("the image was removed")
			}
		})
	}
}
