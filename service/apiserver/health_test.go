package apiserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/logging"
)

func doReq(s *Server, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestHealthReadyMetricsSpec(t *testing.T) {
	ready := errors.New("ceph unreachable")
	s, err := New(Config{Ops: noOps{}, Log: logging.Discard(), Ready: func(context.Context) error { return ready }})
	if err != nil {
		t.Fatal(err)
	}
	if rec := doReq(s, "GET", "/healthz"); rec.Code != 200 {
		t.Fatalf("healthz %d", rec.Code)
	}
	if rec := doReq(s, "GET", "/readyz"); rec.Code != 503 || !strings.Contains(rec.Body.String(), "ceph unreachable") {
		t.Fatalf("readyz %d %s", rec.Code, rec.Body)
	}
	ready = nil
	if rec := doReq(s, "GET", "/readyz"); rec.Code != 200 {
		t.Fatalf("readyz %d", rec.Code)
	}
	if rec := doReq(s, "GET", "/api/v1/openapi.json"); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"openapi":"3.0.3"`) {
		t.Fatalf("openapi.json %d %.100s", rec.Code, rec.Body)
	}
	doReq(s, "GET", "/api/v1/projects") // 401, counted
	rec := doReq(s, "GET", "/metrics")
	for _, want := range []string{
		`bmi_api_requests_total{code="401",method="GET",route="/api/v1/projects"} 1`,
		`bmi_api_requests_total{code="200",method="GET",route="/healthz"} 1`,
		`bmi_api_request_duration_seconds_bucket`,
		`go_goroutines`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestServe serves on loopback and shuts down when ctx is done.
func TestServe(t *testing.T) {
	s := testServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeListener(ctx, ln) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz %d", res.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

// TestSlowBody: a client that stalls while sending a JSON body is cut off
// after BodyTimeout with a 400, and the connection's later requests are
// not bound by it.
func TestSlowBody(t *testing.T) {
	s, err := New(Config{Ops: noOps{}, Log: logging.Discard(), BodyTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeListener(ctx, ln) }()
	defer func() { cancel(); <-done }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("POST /api/v1/projects HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na"))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 400") || !strings.Contains(string(buf[:n]), "timeout") {
		t.Fatalf("stalled body: %q", buf[:n])
	}
}
