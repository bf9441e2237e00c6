package boot

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// EventStore keeps boot events where every gateway of a site reads them
// (bmid's state store).
type EventStore interface {
	// AppendBootEvents stores evs (those of MACs without a boot config
	// are dropped) and returns how many it stored.
	AppendBootEvents(ctx context.Context, evs []Event) (int, error)
	// BootEvents returns the stored events of one node, oldest first.
	BootEvents(ctx context.Context, mac net.HardwareAddr) ([]Event, error)
}

// Shared is a timeline kept in an EventStore, so that every gateway serves
// every node's timeline and a restart of bmid loses none of it. Record
// only queues the event (the boot services never wait on the database);
// Run writes the queue every FlushEvery; NodeEvents reads the store and
// adds what this process has not written yet.
type Shared struct {
	store EventStore
	log   *slog.Logger
	// FlushEvery is how often Run writes the queue; 0 means 100 ms.
	FlushEvery time.Duration
	// MaxQueue bounds the events waiting to be written while the store
	// does not answer; beyond it the oldest are dropped. 0 means 4096.
	MaxQueue int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	queue   []Event
	dropped int
}

// NewShared returns a timeline kept in store.
func NewShared(store EventStore, log *slog.Logger) *Shared {
	return &Shared{store: store, log: log}
}

// Record queues ev; a zero ev.At is set to the current time.
func (s *Shared) Record(_ context.Context, ev Event) {
	ev = ev.kept(s.Now)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, ev)
	s.trimLocked()
}

// trimLocked drops the oldest queued events beyond MaxQueue (default
// 4096), counting them; s.mu is held.
func (s *Shared) trimLocked() {
	max := s.MaxQueue
	if max <= 0 {
		max = 4096
	}
	if len(s.queue) > max {
		s.dropped += len(s.queue) - max
		s.queue = slices.Clone(s.queue[len(s.queue)-max:])
	}
}

// Run writes the queued events to the store every FlushEvery until ctx
// ends, then once more (with a short deadline of its own). Events the
// store refused stay queued for the next write.
func (s *Shared) Run(ctx context.Context) error {
	every := s.FlushEvery
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			s.Flush(fctx)
			return nil
		case <-tick.C:
			s.Flush(ctx)
		}
	}
}

// Flush writes the queued events now. On failure they stay queued (ahead
// of newer ones), and the failure is logged.
func (s *Shared) Flush(ctx context.Context) {
	s.mu.Lock()
	batch, dropped := s.queue, s.dropped
	s.queue, s.dropped = nil, 0
	s.mu.Unlock()
	if dropped > 0 {
		s.log.Warn("boot timeline: events dropped while the state store did not answer", "dropped", dropped)
	}
	if len(batch) == 0 {
		return
	}
	if _, err := s.store.AppendBootEvents(ctx, batch); err != nil {
		s.log.Warn("boot timeline: events not written yet", "events", len(batch), "err", err)
		s.mu.Lock()
		s.queue = append(batch, s.queue...)
		s.trimLocked()
		s.mu.Unlock()
	}
}

// NodeEvents returns the events of the node with this MAC, oldest first:
// those in the store (recorded by any gateway) and those this process has
// queued but not written yet. A node without a boot config has none
// stored.
func (s *Shared) NodeEvents(ctx context.Context, mac net.HardwareAddr) ([]Event, error) {
	evs, err := s.store.BootEvents(ctx, mac)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	for _, ev := range s.queue {
		if slices.Equal(ev.MAC, mac) {
			evs = append(evs, ev)
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(evs, func(a, b Event) int { return a.At.Compare(b.At) })
	return evs, nil
}
