package hil_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/hil"
)

// BenchmarkShowNode: one show_node through the client against hil-mock
// (SQLite, auth cached after the first call).
func BenchmarkShowNode(b *testing.B) {
	m := startMock(b, nil)
	c := hil.New(m.srv.URL(), nil)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.ShowNode(ctx, alice, "node-01"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkShowNodeBaseline: the same call against a handler answering a
// constant body: the client's and HTTP's own cost, to compare with.
func BenchmarkShowNodeBaseline(b *testing.B) {
	body := []byte(`{"name":"node-01","project":"tenant-a","nics":[{"label":"eth0","macaddr":"52:54:00:00:01:01","networks":{}}],"metadata":{}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	c := hil.New(srv.URL, nil)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.ShowNode(ctx, alice, "node-01"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnectDetach: connect a NIC and wait, detach and wait, with
// the recording switch driver (so: hil-mock's and the wait's overhead).
func BenchmarkConnectDetach(b *testing.B) {
	m := startMock(b, nil)
	c := hil.New(m.srv.URL(), nil, hil.WithPolling(time.Millisecond, 10*time.Millisecond))
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.ConnectNetwork(ctx, alice, "node-01", "eth0", "tenant-a-net", ""); err != nil {
			b.Fatal(err)
		}
		if _, err := c.DetachNetwork(ctx, alice, "node-01", "eth0", "tenant-a-net"); err != nil {
			b.Fatal(err)
		}
	}
}
