package apiserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/events"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// busEvents serves every event of the bus to anyone (the daemon's
// authorisation is tested with the daemon).
type busEvents struct{ bus *events.Bus }

func (b busEvents) Subscribe(_ context.Context, _ core.Principal, f api.EventFilter) (<-chan api.Event, func(), error) {
	s, err := b.bus.Subscribe(f.Match)
	if err != nil {
		return nil, nil, err
	}
	return s.C, s.Close, nil
}

// waitFor polls cond (state, not time, decides) for at most a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within a minute", what)
}

// TestEventStream: events arrive in SSE form through the client, filtered;
// a client beyond the bound gets 503; a client that goes away is
// unsubscribed; a shutdown ends open streams instead of waiting for them.
func TestEventStream(t *testing.T) {
	bus := &events.Bus{MaxClients: 2}
	s, err := New(Config{Ops: noOps{}, Log: logging.Discard(), Events: busEvents{bus},
		ShutdownTimeout: time.Hour}) // a shutdown that waited for the streams would hang the test
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.ServeListener(ctx, ln) }()
	c, err := client.New("http://"+ln.Addr().String(), "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	// The clients' contexts are not the server's: the shutdown, not the
	// client, must end the stream.
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	a, err := c.Follow(cctx, api.EventFilter{Project: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	gone, cancelGone := context.WithCancel(cctx)
	b, err := c.Follow(gone, api.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Follow(cctx, api.EventFilter{}); !errors.Is(err, fault.ErrUnavailable) {
		t.Fatalf("third stream with max_clients 2: %v, want unavailable (503)", err)
	}
	bus.Publish(api.Event{Type: api.EventBoot, Project: "p2", Node: "n2", Step: "dhcp-ack"})
	bus.Publish(api.Event{Type: api.EventOperation, Project: "p1", Operation: &api.Operation{ID: "op1", State: "done"}})
	ev, err := a.Next()
	if err != nil || ev.Project != "p1" || ev.Operation == nil || ev.Operation.ID != "op1" || ev.Seq != 2 {
		t.Fatalf("filtered stream: %+v, %v; want p1's op1 (seq 2)", ev, err)
	}
	if ev, err := b.Next(); err != nil || ev.Step != "dhcp-ack" || ev.Node != "n2" {
		t.Fatalf("unfiltered stream: %+v, %v", ev, err)
	}
	// The second client goes away: its subscription ends.
	cancelGone()
	b.Close()
	waitFor(t, "the gone client unsubscribed", func() bool { return bus.Clients() == 1 })
	// Shutdown ends the remaining stream.
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return within a minute: the open stream held the shutdown")
	}
	if _, err := a.Next(); err == nil {
		t.Fatal("the stream goes on after the shutdown")
	}
	waitFor(t, "the stream unsubscribed", func() bool { return bus.Clients() == 0 })
}

// TestEventStreamBadFilter: a malformed project name is refused before
// any subscription.
func TestEventStreamBadFilter(t *testing.T) {
	bus := &events.Bus{}
	s, err := New(Config{Ops: noOps{}, Log: logging.Discard(), Events: busEvents{bus}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "/api/v1/events?project=%3Cscript%3E", nil)
	req.SetBasicAuth("alice", "pw")
	w := &recorder{header: http.Header{}}
	s.Handler().ServeHTTP(w, req)
	if w.code != http.StatusBadRequest || bus.Clients() != 0 {
		t.Fatalf("bad project filter: %d (clients %d), want 400", w.code, bus.Clients())
	}
}

type recorder struct {
	header http.Header
	code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(code int)        { r.code = code }
