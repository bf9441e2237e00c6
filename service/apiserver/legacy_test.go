package apiserver_test

import (
	"encoding/base64"
	"io"
	"net/http"
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

// TestLegacyRoutes checks the original's endpoints: methods, form fields,
// success bodies and status codes, in the order an old script would call
// them.
func TestLegacyRoutes(t *testing.T) {
	e := newEnv(t, true)
	const alice = "alice:alicepw"
	steps := []struct {
		method, path, auth, form string
		status                   int
		body                     string // exact body, or prefix when it ends in "*"
	}{
		{"POST", "/list_images/", "", "project=tenant-a", 400, "No Authentication Details Given"},
		{"POST", "/list_images/", alice, "", 400, `missing form field "project"`},
		{"GET", "/list_images/", alice, "project=tenant-a", 405, "*"},
		{"POST", "/list_images/", alice, "project=tenant-a", 200, `["debian"]`},
		{"POST", "/list_images/", alice, "project=nope", 403, "*"},
		{"POST", "/list_images/", "admin:adminpw", "project=nope", 404, "*not found"},
		{"POST", "/list_images/", "alice:wrong", "project=tenant-a", 401, "*"},
		{"POST", "/list_snapshots/", alice, "project=tenant-a", 200, `[]`},
		{"PUT", "/provision/", alice, "project=tenant-a&node=node1&img=debian", 400, `missing form field "nic"`},
		{"POST", "/provision/", alice, "project=tenant-a&node=node1&img=debian&nic=eth0", 405, "*"},
		{"PUT", "/provision/", alice, "project=tenant-a&node=node1&img=nope&nic=eth0", 404, "*"},
		{"PUT", "/provision/", alice, "project=tenant-a&node=node1&img=debian&nic=eth0", 200, "Success"},
		{"PUT", "/create_snapshot/", alice, "project=tenant-a&node=node1&snap_name=s1", 200, "Success"},
		{"POST", "/list_snapshots/", alice, "project=tenant-a", 200, `[["s1","debian"]]`},
		{"PUT", "/create_snapshot/", alice, "project=tenant-a&node=node1", 400, `missing form field "snap_name"`},
		{"DELETE", "/deprovision/", alice, "project=tenant-a&node=node1", 400, `missing form field "nic"`},
		{"DELETE", "/deprovision/", alice, "project=tenant-a&node=node1&nic=eth0", 200, "Success"},
		{"DELETE", "/deprovision/", alice, "project=tenant-a&node=node1&nic=eth0", 404, "*"},
		{"DELETE", "/remove_image/", alice, "project=tenant-a&img=s1", 200, "Success"},
		{"DELETE", "/remove_image/", alice, "project=tenant-a&img=s1", 404, "*"},
		{"DELETE", "/remove_image/", alice, "project=tenant-a", 400, `missing form field "img"`},
		{"PUT", "/create_disk", alice, "project=tenant-a&disk_name=d1&img=debian", 200, `"t1img*`},
		{"PUT", "/create_disk", alice, "project=tenant-a&disk_name=d1&img=debian", 409, "Disk exists. Endpoint:t1img*"},
		{"PUT", "/provision/", alice, "project=tenant-a&node=node2&disk_name=d1&nic=eth0", 200, "Success"},
		{"DELETE", "/delete_disk", alice, "project=tenant-a&disk_name=d1", 409, "*"},
		{"DELETE", "/deprovision/", alice, "project=tenant-a&node=node2&nic=eth0", 200, "Success"},
		{"PUT", "/create_snapshot/", alice, "project=tenant-a&disk_name=d1&snap_name=s2", 200, "Success"},
		{"DELETE", "/delete_disk", alice, "project=tenant-a&disk_name=d1", 200, "Success"},
		{"DELETE", "/delete_disk", alice, "project=tenant-a&disk_name=d1", 404, "*"},
		{"PUT", "/delete_disk", alice, "project=tenant-a&disk_name=d1", 405, "*"},
		{"DELETE", "/delete_disk", alice, "project=tenant-a", 400, `missing form field "disk_name"`},
		{"POST", "/no_such_thing/", alice, "project=tenant-a", 404, "*"},
		{"POST", "/list_images", alice, "project=tenant-a", 200, `["debian"]`}, // 308 to /list_images/, followed
	}
	for i, s := range steps {
		r := legacy(t, e, s.method, s.path, s.auth, s.form)
		ok := r.body == s.body
		if p, star := strings.CutSuffix(s.body, "*"); star {
			ok = strings.HasPrefix(r.body, p)
		}
		if p, star := strings.CutPrefix(s.body, "*"); star && !ok {
			ok = strings.HasSuffix(r.body, p)
		}
		if r.status != s.status || !ok {
			t.Fatalf("step %d: %s %s %q: %d %q, want %d %q", i, s.method, s.path, s.form, r.status, r.body, s.status, s.body)
		}
		if s.path != "/no_such_thing/" && s.path != "/list_images" && r.status != 405 {
			conform(t, s.method, s.path, "application/x-www-form-urlencoded", s.form, r.status, r.header, r.body)
		}
		if r.status != 200 && strings.HasPrefix(r.body, "{") {
			t.Fatalf("step %d: legacy error body is JSON: %s", i, r.body)
		}
	}
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
