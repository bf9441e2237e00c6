package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestLoadChild is RunProcess's child in this package's tests.
func TestLoadChild(t *testing.T) {
	if _, err := ServeChild(); err != nil {
		t.Fatal(err)
	}
}

// TestRunProcess runs a load in a child process against a server in this
// one: the requests reach the server with the credentials, every answer
// is counted, the failing ones as errors, and the child's CPU is reported.
func TestRunProcess(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "pw" {
			http.Error(w, "who", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/bad" {
			http.Error(w, "bad", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	r, cpu, err := RunProcess(context.Background(), "TestLoadChild", Spec{Base: srv.URL, Clients: 4, Duration: 500 * time.Millisecond,
		User: "alice", Password: "pw", Paths: []string{"/good", "/bad"}})
	if err != nil {
		t.Fatal(err)
	}
	n := len(r.Latencies)
	if n < 10 || r.Errors < n/4 || r.Errors > 3*n/4 || r.Elapsed < 400*time.Millisecond || cpu <= 0 {
		t.Fatalf("%d requests, %d errors, %v elapsed, %v CPU; want half of many requests failed over about 500 ms, some CPU", n, r.Errors, r.Elapsed, cpu)
	}
	if _, _, err := RunProcess(context.Background(), "TestNothing", Spec{Base: srv.URL, Clients: 1, Duration: time.Millisecond, Paths: []string{"/"}}); err == nil {
		t.Fatal("RunProcess with a test that does not serve the child succeeded")
	}
}
