package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// noOps satisfies Ops for tests that never call an operation.
type noOps struct{ *core.Service }

func testServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Config{Ops: noOps{}, Log: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z_]+)`)

// TestOpenAPIMatchesRoutes: every registered route is documented and every
// documented operation is a registered route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := testServer(t)
	doc, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for _, r := range s.engine.Routes() {
		registered[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	var missing, stale []string
	for k := range registered {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !registered[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 || len(stale) > 0 {
		t.Fatalf("routes not in openapi.yaml: %v\ndocumented routes not registered: %v", missing, stale)
	}
	if len(registered) < 40 {
		t.Fatalf("only %d routes registered", len(registered))
	}
}

// TestStatusOf is the error table.
func TestStatusOf(t *testing.T) {
	cases := map[string]struct {
		err    error
		status int
		kind   fault.Kind
		msg    string
	}{
		"not found":       {fmt.Errorf("image %q: %w", "x", fault.ErrNotFound), 404, fault.NotFound, `image "x": not found`},
		"exists":          {fault.Errorf(fault.Exists, "dup"), 409, fault.Exists, "dup"},
		"conflict":        {fault.Errorf(fault.Conflict, "busy"), 409, fault.Conflict, "busy"},
		"forbidden":       {fault.Errorf(fault.Forbidden, "no"), 403, fault.Forbidden, "no"},
		"unauthenticated": {fault.Errorf(fault.Unauthenticated, "who"), 401, fault.Unauthenticated, "who"},
		"invalid":         {fault.Errorf(fault.Invalid, "bad"), 400, fault.Invalid, "bad"},
		"unavailable":     {fault.Errorf(fault.Unavailable, "ceph down"), 503, fault.Unavailable, "ceph down"},
		"internal":        {fault.Errorf(fault.Internal, "secret detail"), 500, fault.Internal, "internal error"},
		"unclassified":    {errors.New("rados: -5 at /var/lib/x"), 500, fault.Internal, "internal error"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st, k, msg := statusOf(tc.err)
			if st != tc.status || k != tc.kind || msg != tc.msg {
				t.Fatalf("statusOf = %d %s %q, want %d %s %q", st, k, msg, tc.status, tc.kind, tc.msg)
			}
		})
	}
}

// TestMount serves an extra handler under a prefix and refuses bad ones.
func TestMount(t *testing.T) {
	s := testServer(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "script for "+r.URL.Path) })
	if err := s.Mount("/boot", h); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"/", "/api", "/api/v2", "/boot"} {
		if err := s.Mount(bad, h); err == nil {
			t.Errorf("Mount(%q) accepted", bad)
		}
	}
	rec := doReq(s, "GET", "/boot/52-54-00-00-00-01.ipxe")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "script for /boot/52-54-00-00-00-01.ipxe") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

// FuzzDecodeJSON: the request decoder never panics, and what it accepts
// re-encodes to an object whose fields are all known.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"image":"debian","name":"d1"}`, `{"image":1}`, `{`, `{"x":1}`, `{} {}`, `null`, `[]`, ``, `{"image":"a\u0000"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		type req struct {
			Image string `json:"image"`
			Name  string `json:"name"`
		}
		var r req
		err := decodeJSON("application/json", strings.NewReader(in), &r)
		if err != nil && fault.Of(err) != fault.Invalid {
			t.Fatalf("decode error %v is not invalid", err)
		}
		if err == nil && !strings.Contains(in, "{") && !strings.Contains(in, "null") {
			t.Fatalf("accepted %q", in)
		}
	})
}

// FuzzLegacyPrincipal: the legacy Authorization parser never panics and
// only yields a user when it refuses nothing.
func FuzzLegacyPrincipal(f *testing.F) {
	for _, s := range []string{"Basic YWxpY2U6YWxpY2Vwdw==", "Basic", "", "x !!", "Basic Og=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		p, err := legacyPrincipal(h)
		if err == nil && p.User == "" {
			t.Fatalf("%q: accepted without a user", h)
		}
		if err != nil && fault.Of(err) != fault.Unauthenticated {
			t.Fatalf("%q: error kind %s", h, fault.Of(err))
		}
	})
}
