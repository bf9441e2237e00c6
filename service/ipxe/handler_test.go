package ipxe

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// specsFunc adapts a function to BootSpecs.
type specsFunc func(context.Context, net.HardwareAddr) (Spec, error)

func (f specsFunc) BootSpec(ctx context.Context, mac net.HardwareAddr) (Spec, error) {
	return f(ctx, mac)
}

var mac1 = net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 1}

func testHandler(t testing.TB) (*Handler, *boot.Timeline) {
	tl := boot.NewTimeline()
	specs := specsFunc(func(_ context.Context, mac net.HardwareAddr) (Spec, error) {
		switch mac.String() {
		case mac1.String():
			return baseSpec(), nil
		case "52:54:00:77:00:02":
			return Spec{}, fault.Errorf(fault.Unavailable, "state db is down")
		case "52:54:00:77:00:03":
			s := baseSpec()
			s.TargetIQN = "bad\nname"
			return s, nil
		}
		return Spec{}, fault.Errorf(fault.NotFound, "no boot config for %s", mac)
	})
	return &Handler{
		Specs: specs, Renderer: renderer(t), Log: logging.Discard(), Recorder: tl,
		Files: fstest.MapFS{"undionly.kpxe": {Data: []byte("KPXE")}},
	}, tl
}

func TestHandler(t *testing.T) {
	tests := map[string]struct {
		method, path string
		status       int
		contains     string
	}{
		"by mac colons":      {"GET", "/boot/52:54:00:77:00:01.ipxe", 200, "sanboot --keep iscsi:10.77.0.1::3260:1:iqn.2026-11.org.bmi:lab.7 || goto attempt-failed"},
		"by mac dashes":      {"GET", "/boot/52-54-00-77-00-01.ipxe", 200, "set username node1"},
		"by mac upper":       {"GET", "/boot/52-54-00-77-00-01.ipxe", 200, "#!ipxe"},
		"initiator name":     {"GET", "/boot/52:54:00:77:00:01.ipxe", 200, "set initiator-iqn iqn.2026-11.org.bmi:node1"},
		"by node is gone":    {"GET", "/boot/node/node1.ipxe", 404, ""},
		"unknown mac":        {"GET", "/boot/52:54:00:77:00:09.ipxe", 200, "BMI-NO-BOOT-CONFIG 52:54:00:77:00:09"},
		"lookup fails":       {"GET", "/boot/52:54:00:77:00:02.ipxe", 503, "lookup failed"},
		"invalid config":     {"GET", "/boot/52:54:00:77:00:03.ipxe", 200, "boot config of this machine is invalid"},
		"bad mac":            {"GET", "/boot/zz.ipxe", 404, ""},
		"no suffix":          {"GET", "/boot/52:54:00:77:00:01", 404, ""},
		"traversal":          {"GET", "/boot/node/../x.ipxe", 404, ""},
		"post":               {"POST", "/boot/52:54:00:77:00:01.ipxe", 405, ""},
		"binary":             {"GET", "/boot/undionly.kpxe", 200, "KPXE"},
		"binary not present": {"GET", "/boot/ipxe.efi", 404, ""},
		"other path":         {"GET", "/api/x", 404, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h, _ := testHandler(t)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			body, _ := io.ReadAll(rec.Result().Body)
			if rec.Code != tc.status {
				t.Fatalf("%s %s: status %d, want %d (body %q)", tc.method, tc.path, rec.Code, tc.status, body)
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("%s %s: body %q lacks %q", tc.method, tc.path, body, tc.contains)
			}
		})
	}
}

func TestHandlerRecordsScript(t *testing.T) {
	h, tl := testHandler(t)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/boot/52-54-00-77-00-01.ipxe", nil))
	evs := tl.Events(mac1)
	if len(evs) != 1 || evs[0].Step != boot.StepScript || evs[0].At.IsZero() {
		t.Fatalf("timeline after one script = %+v, want one %s event", evs, boot.StepScript)
	}
}

func TestHandlerFaultDrop(t *testing.T) {
	h, tl := testHandler(t)
	h.Faults = boot.Faults{DropRate: 1}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/boot/52-54-00-77-00-01.ipxe")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("request with drop rate 1 got status %d, want the connection closed", resp.StatusCode)
	}
	if evs := tl.Events(mac1); len(evs) != 0 {
		t.Errorf("a dropped request was recorded: %+v", evs)
	}
}

func TestServerStops(t *testing.T) {
	h, _ := testHandler(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Handler: h, Log: logging.Discard()}).ServeListener(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/boot/52-54-00-77-00-01.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
}

type clientsFunc func(net.IP) net.HardwareAddr

func (f clientsFunc) MACByIP(_ context.Context, ip net.IP) (net.HardwareAddr, error) {
	if m := f(ip); m != nil {
		return m, nil
	}
	return nil, fault.Errorf(fault.NotFound, "no lease for %s", ip)
}

func TestHandlerRecordsBinary(t *testing.T) {
	h, tl := testHandler(t)
	h.Clients = clientsFunc(func(ip net.IP) net.HardwareAddr {
		if ip.String() == "192.0.2.1" { // httptest's remote address
			return mac1
		}
		return nil
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/boot/undionly.kpxe", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	evs := tl.Events(mac1)
	if len(evs) != 1 || evs[0].Step != boot.StepBinary || evs[0].Detail != "/boot/undionly.kpxe" {
		t.Fatalf("timeline %+v, want one %s event", evs, boot.StepBinary)
	}
}

func TestHandlerRequireLease(t *testing.T) {
	tests := map[string]struct {
		holder net.HardwareAddr
		path   string
		status int
	}{
		"lease holder":       {mac1, "/boot/52-54-00-77-00-01.ipxe", 200},
		"other client":       {net.HardwareAddr{2, 0, 0, 0, 0, 1}, "/boot/52-54-00-77-00-01.ipxe", 403},
		"no lease":           {nil, "/boot/52-54-00-77-00-01.ipxe", 403},
		"spoofed query":      {net.HardwareAddr{2, 0, 0, 0, 0, 1}, "/boot/52-54-00-77-00-01.ipxe?mac=02:00:00:00:00:01", 403},
		"no config still ok": {nil, "/boot/52-54-00-77-00-09.ipxe", 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h, _ := testHandler(t)
			h.RequireLease = true
			h.Clients = clientsFunc(func(net.IP) net.HardwareAddr { return tc.holder })
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.status == 403 && strings.Contains(rec.Body.String(), "Zx9-secret") {
				t.Fatal("a refused client got the CHAP secret")
			}
		})
	}
}

func TestHandlerScriptToken(t *testing.T) {
	now := time.Unix(1000, 0)
	tokens := NewTokens(func() time.Time { return now })
	other := net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 9}
	tests := map[string]struct {
		token  func() string
		after  time.Duration
		status int
	}{
		"issued token":         {func() string { return tokens.Issue(mac1) }, 0, 200},
		"no token":             {func() string { return "" }, 0, 403},
		"made-up token":        {func() string { return strings.Repeat("0", 32) }, 0, 403},
		"other MAC's token":    {func() string { return tokens.Issue(other) }, 0, 403},
		"expired token":        {func() string { return tokens.Issue(mac1) }, TokenTTL + time.Second, 403},
		"token used twice":     {func() string { tok := tokens.Issue(mac1); tokens.Redeem(mac1, tok); return tok }, 0, 403},
		"long token":           {func() string { return tokens.Issue(mac1) + "00" }, 0, 403},
		"no config, no secret": {func() string { return "" }, 0, 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h, _ := testHandler(t)
			h.Tokens = tokens
			path := "/boot/52-54-00-77-00-01.ipxe?token=" + tc.token()
			if name == "no config, no secret" {
				path = "/boot/52-54-00-77-00-09.ipxe"
			}
			now = now.Add(tc.after)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if rec.Code != tc.status {
				t.Fatalf("GET %s: status %d, want %d", path, rec.Code, tc.status)
			}
			if tc.status == 403 && strings.Contains(rec.Body.String(), "Zx9-secret") {
				t.Fatal("a refused client got the CHAP secret")
			}
		})
	}
}

func TestTokensBounded(t *testing.T) {
	tokens := NewTokens(nil)
	first := tokens.Issue(mac1)
	for i := 0; i < maxTokens+10; i++ {
		tokens.Issue(net.HardwareAddr{2, 0, byte(i >> 16), byte(i >> 8), byte(i), 0})
	}
	if tokens.n > maxTokens {
		t.Fatalf("token table holds %d, want at most %d", tokens.n, maxTokens)
	}
	if tokens.Redeem(mac1, first) {
		t.Fatal("a token survived the table overflowing; want it dropped")
	}
	tok := tokens.Issue(mac1)
	if !tokens.Redeem(mac1, tok) {
		t.Fatal("fresh token refused")
	}
}

// FuzzHandlerPath: no path or query, from a client without the lease or
// a token, gets the secret, and none makes the handler fail.
func FuzzHandlerPath(f *testing.F) {
	for _, s := range []string{"/boot/52-54-00-77-00-01.ipxe", "/boot/52:54:00:77:00:01.ipxe?token=x", "/boot/node/node1.ipxe",
		"/boot/%2e%2e/52-54-00-77-00-01.ipxe", "/boot/52-54-00-77-00-01.ipxe/", "/boot/undionly.kpxe", "/boot/5254.0077.0001.ipxe",
		"/boot/52-54-00-77-00-01.ipxe?token=" + strings.Repeat("a", 32) + "&token=b"} {
		f.Add(s)
	}
	h, _ := testHandler(f)
	h.RequireLease = true
	h.Clients = clientsFunc(func(net.IP) net.HardwareAddr { return nil })
	h.Tokens = NewTokens(nil)
	f.Fuzz(func(t *testing.T, target string) {
		req, err := http.NewRequest("GET", "http://bmid"+target, nil)
		if err != nil || req.URL.Path == "" {
			return
		}
		req.RemoteAddr = "192.0.2.9:4000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if strings.Contains(rec.Body.String(), "Zx9-secret") {
			t.Fatalf("GET %q from a stranger got the secret", target)
		}
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("GET %q: %d", target, rec.Code)
		}
	})
}
