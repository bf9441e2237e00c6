package apiserver

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/guard"
	"github.com/bmi-go/bmi/service/logging"
)

// recSecurity records audit entries; its ACL calls echo their input.
type recSecurity struct {
	mu      sync.Mutex
	entries []api.AuditEntry
}

func (r *recSecurity) ACL(_ context.Context, _ core.Principal, project, disk string) (api.ACL, error) {
	return api.ACL{Project: project, Disk: disk}, nil
}

func (r *recSecurity) ChangeACL(_ context.Context, _ core.Principal, project, disk string, ch api.ACLChange) (api.ACL, error) {
	return api.ACL{Project: project, Disk: disk, Initiators: ch.Add}, nil
}

func (r *recSecurity) BootScript(_ context.Context, _ core.Principal, _, node string) ([]byte, error) {
	return []byte("#!ipxe\necho " + node + "\n"), nil
}

func (r *recSecurity) Credentials(_ context.Context, who core.Principal, _, _ string) (api.Credentials, error) {
	if who.User != "admin" {
		return api.Credentials{}, fault.Errorf(fault.Forbidden, "administrators only")
	}
	return api.Credentials{IQN: "iqn.x", CHAPUser: "u", CHAPSecret: "s3cret"}, nil
}

func (r *recSecurity) RotateSecret(_ context.Context, _ core.Principal, _, _ string) (core.Target, error) {
	return core.Target{IQN: "iqn.x", CHAPUser: "u", CHAPSecret: "never-shown-secret"}, nil
}

func (r *recSecurity) Audit(context.Context, core.Principal, api.AuditQuery) ([]api.AuditEntry, error) {
	return nil, nil
}

func (r *recSecurity) Record(_ context.Context, e api.AuditEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, e)
}

// TestAuthThrottle: after the burst of failures a source, and separately
// a user name, gets 429 without its credentials reaching the
// authenticator; other sources and users are unaffected; each refusal is
// audited.
func TestAuthThrottle(t *testing.T) {
	auth := &countingAuth{}
	sec := &recSecurity{}
	s, err := New(Config{Ops: projectsOps{}, Auth: auth, Log: logging.Discard(), Security: sec,
		AuthFailures: guard.New(time.Hour, 5, nil)})
	if err != nil {
		t.Fatal(err)
	}
	do := func(remote, user, pw string) int {
		req := httptest.NewRequest("GET", "/api/v1/projects", nil)
		req.RemoteAddr = remote + ":4000"
		req.Header.Set("X-Forwarded-For", "198.51.100.7") // must not be believed
		req.SetBasicAuth(user, pw)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	var codes []int
	for i := 0; i < 8; i++ {
		codes = append(codes, do("10.0.0.66", "guess"+string(rune('a'+i)), "wrong"))
	}
	want := []int{401, 401, 401, 401, 401, 429, 429, 429}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("8 bad passwords from one source: %v, want %v", codes, want)
		}
	}
	if n := auth.calls.Load(); n != 5 {
		t.Fatalf("authenticator called %d times, want 5 (throttled tries never reach HIL)", n)
	}
	if got := do("10.0.0.66", "alice", "right"); got != 429 {
		t.Fatalf("right password from the throttled source: %d, want 429", got)
	}
	if got := do("10.0.0.7", "alice", "right"); got != 200 {
		t.Fatalf("another source: %d, want 200", got)
	}
	// Per user: failures spread over sources throttle the name for those
	// sources, but not for the real user's own (never failing) address.
	for i := 0; i < 5; i++ {
		do("10.1.0."+string(rune('1'+i)), "bob", "wrong")
	}
	if got := do("10.1.0.1", "bob", "wrong"); got != 429 {
		t.Fatalf("user bob after 5 failures from 5 sources, from one of them: %d, want 429", got)
	}
	if got := do("10.1.0.9", "bob", "right"); got != 200 {
		t.Fatalf("user bob from an address that never failed: %d, want 200 (no lock-out)", got)
	}
	sec.mu.Lock()
	defer sec.mu.Unlock()
	var n401, n429 int
	for _, e := range sec.entries {
		switch e.Outcome {
		case "401":
			n401++
		case "429":
			n429++
		}
		if e.Source == "198.51.100.7" {
			t.Fatalf("audit believed X-Forwarded-For: %+v", e)
		}
	}
	if n401 != 10 || n429 != 5 {
		t.Fatalf("audit has %d refusals and %d throttles, want 10 and 5: %+v", n401, n429, sec.entries)
	}
}

// TestAuditStateChanges: a state-changing call is audited with its user,
// source, route and status; a read is not.
func TestAuditStateChanges(t *testing.T) {
	sec := &recSecurity{}
	s, err := New(Config{Ops: projectsOps{}, Log: slog.New(slog.DiscardHandler), Security: sec})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/v1/projects", ""},
		{"PATCH", "/api/v1/projects/p/targets/d1/acl", `{"add":["iqn.2026-11.org.bmi:lab.node.n1"]}`},
		{"PATCH", "/api/v1/projects/p/targets/d1/acl", `{"add":["NOT-AN-IQN"]}`},
		{"PATCH", "/api/v1/projects/p/targets/d1/acl", `{}`},
	} {
		req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("alice", "pw")
		s.Handler().ServeHTTP(httptest.NewRecorder(), req)
	}
	sec.mu.Lock()
	defer sec.mu.Unlock()
	if len(sec.entries) != 3 {
		t.Fatalf("audit entries %+v, want the 3 PATCHes", sec.entries)
	}
	e := sec.entries[0]
	if e.Actor != "alice" || e.Source != "192.0.2.1" || e.Action != "PATCH /api/v1/projects/:project/targets/:disk/acl" ||
		e.Outcome != "200" || sec.entries[1].Outcome != "400" || sec.entries[2].Outcome != "400" {
		t.Fatalf("audit entries %+v", sec.entries)
	}
}

func FuzzACLChange(f *testing.F) {
	sec := &recSecurity{}
	s, err := New(Config{Ops: projectsOps{}, Log: slog.New(slog.DiscardHandler), Security: sec})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("p", "d1", `{"add":["iqn.2026-11.org.bmi:lab.node.n1"]}`)
	f.Add("p", "d1", `{"remove":["iqn.x"]}`)
	f.Add("", "d1", `{"add":[""]}`)
	f.Add("p", "..", `{"add":["iqn.2026-11.org.bmi:a\u0000b"]}`)
	f.Fuzz(func(t *testing.T, project, disk, body string) {
		req, err := http.NewRequest("PATCH", "/api/v1/projects/"+project+"/targets/"+disk+"/acl", strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("alice", "pw")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code == 200 {
			var ch api.ACLChange
			if err := decodeJSON("application/json", strings.NewReader(body), &ch); err != nil {
				t.Fatalf("200 for an undecodable body %q", body)
			}
			for _, n := range append(ch.Add, ch.Remove...) {
				if validInitiator(n) != nil {
					t.Fatalf("200 for initiator name %q", n)
				}
			}
		} else if rec.Code >= 500 {
			t.Fatalf("PATCH %q %q: %d", req.URL.Path, body, rec.Code)
		}
	})
}

func TestRotateSecretHidesSecret(t *testing.T) {
	s, err := New(Config{Ops: projectsOps{}, Log: slog.New(slog.DiscardHandler), Security: &recSecurity{}})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/api/v1/projects/p/targets/d1/rotate-secret", nil)
	req.SetBasicAuth("alice", "pw")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "never-shown") || !strings.Contains(rec.Body.String(), `"iqn":"iqn.x"`) {
		t.Fatalf("rotate-secret = %d %s", rec.Code, rec.Body.String())
	}
}

// TestCredentialsAudited: reading a secret is audited, also when refused.
func TestCredentialsAudited(t *testing.T) {
	sec := &recSecurity{}
	s, err := New(Config{Ops: projectsOps{}, Log: slog.New(slog.DiscardHandler), Security: sec})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user string
		want int
	}{{"admin", 200}, {"alice", 403}} {
		req := httptest.NewRequest("GET", "/api/v1/projects/p/targets/d1/credentials", nil)
		req.SetBasicAuth(c.user, "pw")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != c.want || c.want == 403 && strings.Contains(rec.Body.String(), "s3cret") {
			t.Fatalf("credentials as %s = %d %s", c.user, rec.Code, rec.Body.String())
		}
	}
	sec.mu.Lock()
	defer sec.mu.Unlock()
	if len(sec.entries) != 2 || sec.entries[0].Actor != "admin" || sec.entries[0].Outcome != "200" || sec.entries[1].Outcome != "403" {
		t.Fatalf("audit %+v, want both reads", sec.entries)
	}
}
