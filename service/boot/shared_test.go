package boot

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/logging"
)

// memStore is an EventStore in memory that can be made to fail.
type memStore struct {
	mu   sync.Mutex
	evs  []Event
	down bool
}

func (m *memStore) AppendBootEvents(_ context.Context, evs []Event) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return 0, errors.New("store down")
	}
	m.evs = append(m.evs, evs...)
	return len(evs), nil
}

func (m *memStore) BootEvents(_ context.Context, mac net.HardwareAddr) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errors.New("store down")
	}
	var out []Event
	for _, ev := range m.evs {
		if slices.Equal(ev.MAC, mac) {
			out = append(out, ev)
		}
	}
	return out, nil
}

// TestShared: Record only queues (redacted, stamped); a node's events are
// readable before and after they are written; a store that does not
// answer keeps them queued, oldest dropped beyond MaxQueue, and they are
// written once it answers; Run writes the rest when it ends.
func TestShared(t *testing.T) {
	ctx := context.Background()
	st := &memStore{}
	s := NewShared(st, logging.Discard())
	s.MaxQueue = 3
	t0 := time.Unix(1_800_000_000, 0)
	s.Now = func() time.Time { return t0 }
	a, _ := net.ParseMAC("52:54:00:00:00:01")
	b, _ := net.ParseMAC("52:54:00:00:00:02")
	s.Record(ctx, Event{MAC: a, Step: StepDiscover})
	s.Record(ctx, Event{MAC: b, Step: StepDiscover, At: t0.Add(-time.Second)})
	s.Record(ctx, Event{MAC: a, Step: StepScript, At: t0.Add(time.Second), Detail: "http://h/boot/a.ipxe?token=x"})
	if len(st.evs) != 0 {
		t.Fatalf("Record wrote to the store at once: %+v", st.evs)
	}
	steps := func(mac net.HardwareAddr) []Step {
		t.Helper()
		evs, err := s.NodeEvents(ctx, mac)
		if err != nil {
			t.Fatal(err)
		}
		var out []Step
		for _, ev := range evs {
			out = append(out, ev.Step)
		}
		return out
	}
	if got := steps(a); !slices.Equal(got, []Step{StepDiscover, StepScript}) {
		t.Fatalf("a's queued events = %v", got)
	}
	s.Flush(ctx)
	if len(st.evs) != 3 || !st.evs[0].At.Equal(t0) || st.evs[2].Detail != "http://h/boot/a.ipxe?…" {
		t.Fatalf("written = %+v; want 3, the first stamped now, the script's query redacted", st.evs)
	}
	if got := steps(a); !slices.Equal(got, []Step{StepDiscover, StepScript}) {
		t.Fatalf("a's written events = %v", got)
	}

	// The store stops answering: events wait, the oldest beyond MaxQueue
	// are dropped, and the rest are written once it answers again.
	st.mu.Lock()
	st.down = true
	st.mu.Unlock()
	for i, step := range []Step{StepAck, StepBinary, StepLogin} {
		s.Record(ctx, Event{MAC: a, Step: step, At: t0.Add(time.Duration(2+i) * time.Second)})
	}
	s.Flush(ctx)
	s.Record(ctx, Event{MAC: a, Step: StepLoginRefused, At: t0.Add(5 * time.Second)})
	if _, err := s.NodeEvents(ctx, a); err == nil {
		t.Fatal("NodeEvents with the store down: no error")
	}
	st.mu.Lock()
	st.down = false
	st.mu.Unlock()
	rctx, cancel := context.WithCancel(ctx)
	cancel() // Run writes what is queued as it ends
	if err := s.Run(rctx); err != nil {
		t.Fatal(err)
	}
	if got := steps(a); !slices.Equal(got, []Step{StepDiscover, StepScript, StepBinary, StepLogin, StepLoginRefused}) {
		t.Fatalf("a's events after the outage = %v; want the oldest queued (dhcp-ack) dropped, the rest in order", got)
	}
}
