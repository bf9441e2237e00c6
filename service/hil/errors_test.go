package hil_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hil"
)

// TestErrorMapping: every HIL answer class maps to one fault kind and
// keeps HIL's type and message. A fake HIL answers what the row says; for
// 401 it also answers the authentication probe (GET /v0/node/<probe>).
func TestErrorMapping(t *testing.T) {
	tests := map[string]struct {
		status    int
		body      string
		probe     int // status of the authentication probe after a 401
		kind      fault.Kind
		typ, want string
	}{
		"400 validation":    {400, `{"type":"ValidationError","msg":"bad body"}`, 0, fault.Invalid, "ValidationError", "bad body"},
		"400 bad argument":  {400, `{"type":"BadArgumentError","msg":"bad channel"}`, 0, fault.Invalid, "BadArgumentError", "bad channel"},
		"401 bad creds":     {401, `{"type":"AuthorizationError","msg":"Authentication failed."}`, 401, fault.Unauthenticated, "AuthorizationError", "Authentication failed."},
		"401 no access":     {401, `{"type":"AuthorizationError","msg":"no access"}`, 200, fault.Forbidden, "AuthorizationError", "no access"},
		"401 probe broken":  {401, `{"type":"AuthorizationError","msg":"no"}`, 500, fault.Unauthenticated, "AuthorizationError", "no"},
		"403":               {403, `{"type":"Forbidden","msg":"proxy says no"}`, 0, fault.Forbidden, "Forbidden", "proxy says no"},
		"404":               {404, `{"type":"NotFoundError","msg":"Node x does not exist."}`, 0, fault.NotFound, "NotFoundError", "Node x does not exist."},
		"409 duplicate":     {409, `{"type":"DuplicateError","msg":"Node x already exists."}`, 0, fault.Exists, "DuplicateError", "already exists"},
		"409 blocked":       {409, `{"type":"BlockedError","msg":"pending"}`, 0, fault.Conflict, "BlockedError", "pending"},
		"409 mismatch":      {409, `{"type":"ProjectMismatchError","msg":"Node not in project"}`, 0, fault.Conflict, "ProjectMismatchError", "Node not in project"},
		"409 illegal state": {409, `{"type":"IllegalStateError","msg":"x"}`, 0, fault.Conflict, "IllegalStateError", "x"},
		"500 OBM":           {500, `{"type":"OBMError","msg":"ipmitool timed out"}`, 0, fault.Unavailable, "OBMError", "ipmitool timed out"},
		"500 switch":        {500, `{"type":"SwitchError","msg":"ssh to switch failed"}`, 0, fault.Unavailable, "SwitchError", "ssh to switch failed"},
		"500 server":        {500, `{"type":"ServerError","msg":"db locked"}`, 0, fault.Internal, "ServerError", "db locked"},
		"500 allocation":    {500, `{"type":"AllocationError","msg":"No more networks"}`, 0, fault.Internal, "AllocationError", "No more networks"},
		"500 not JSON":      {500, `<html>Internal Server Error</html>`, 0, fault.Internal, "", "<html>Internal Server Error</html>"},
		"502 gateway":       {502, `bad gateway`, 0, fault.Unavailable, "", "bad gateway"},
		"503 empty":         {503, ``, 0, fault.Unavailable, "", "no message"},
		"405 method":        {405, `Method Not Allowed`, 0, fault.Invalid, "", "Method Not Allowed"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/v0/node/bmi-auth-probe") {
					w.WriteHeader(tc.probe)
					if tc.probe == 404 {
						w.Write([]byte(`{"type":"NotFoundError","msg":"Node bmi-auth-probe.invalid does not exist."}`))
					}
					return
				}
				if r.URL.Path != "/v0/node/x" || r.Method != http.MethodGet {
					t.Errorf("unexpected call %s %s", r.Method, r.URL.Path)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := hil.New(srv.URL, srv.Client())
			_, err := c.ShowNode(context.Background(), alice, "x")
			if got := fault.Of(err); got != tc.kind {
				t.Fatalf("kind %q (%v), want %q", got, err, tc.kind)
			}
			he, ok := hil.IsHILError(err)
			if !ok || he.Type != tc.typ || he.Status != tc.status || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), `show node "x"`) {
				t.Fatalf("error %v (%+v), want type %q and message %q", err, he, tc.typ, tc.want)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	c := hil.New("http://"+addr, nil)
	_, err = c.ShowNode(context.Background(), alice, "node-01")
	if !errors.Is(err, fault.ErrUnavailable) || !strings.Contains(err.Error(), "cannot reach HIL") {
		t.Fatalf("connection refused: %v", err)
	}

	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	c = hil.New(srv.URL, &http.Client{Timeout: 100 * time.Millisecond})
	if err := c.PowerOff(context.Background(), alice, "node-01"); !errors.Is(err, fault.ErrUnavailable) {
		t.Fatalf("timeout: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c = hil.New(srv.URL, nil)
	if err := c.PowerOff(ctx, alice, "node-01"); !errors.Is(err, fault.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("context deadline: %v", err)
	}
}

// TestNotJSONAnswer: a 200 that is not the expected JSON is an internal
// error, not a silent zero value.
func TestNotJSONAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`<html>proxy login</html>`))
	}))
	defer srv.Close()
	_, err := hil.New(srv.URL, nil).ShowNode(context.Background(), alice, "node-01")
	if fault.Of(err) != fault.Internal || !strings.Contains(err.Error(), "not the JSON expected") {
		t.Fatalf("err %v", err)
	}
}

// TestAuthenticateProbe: how the probe's answers are read, including real
// HIL's database backend answering an unknown user with 404.
func TestAuthenticateProbe(t *testing.T) {
	tests := map[string]struct {
		status int
		body   string
		want   error
	}{
		"probe node not found": {404, `{"type":"NotFoundError","msg":"Node bmi-auth-probe.invalid does not exist."}`, nil},
		"probe node exists":    {200, `{}`, nil},
		"refused":              {401, `{"type":"AuthorizationError","msg":"Authentication failed."}`, fault.ErrUnauthenticated},
		"unknown user (HIL)":   {404, `{"type":"NotFoundError","msg":"User ghost does not exist."}`, fault.ErrUnauthenticated},
		"HIL down":             {503, ``, fault.ErrUnavailable},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v0/node/bmi-auth-probe.invalid" || r.Method != http.MethodGet {
					t.Errorf("probe called %s %s", r.Method, r.URL.Path)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			err := hil.New(srv.URL, nil).Authenticate(context.Background(), alice)
			if !errIs(err, tc.want) {
				t.Fatalf("Authenticate: %v, want %v", err, tc.want)
			}
		})
	}
}
