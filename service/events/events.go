// Package events is bmid's in-process event bus: operation state changes
// and boot milestones, fanned out to the clients of the event stream
// (GET /api/v1/events). Publishing never blocks; a client too slow to take
// its events is dropped (its stream ends and it reconnects), and the number
// of clients is bounded.
package events

import (
	"sync"
	"time"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/fault"
)

// Bus fans events out to subscribers.
type Bus struct {
	// MaxClients bounds the subscribers at once; 0 means 64.
	MaxClients int
	// Buffer is how many events a subscriber may fall behind before it is
	// dropped; 0 means 256.
	Buffer int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	seq    uint64
	subs   map[*Sub]struct{}
	closed bool
}

// Sub is one subscription.
type Sub struct {
	// C delivers the events; it is closed when the subscription ends
	// (Close, the bus closing, or the subscriber falling behind).
	C <-chan api.Event

	c      chan api.Event
	match  func(api.Event) bool
	bus    *Bus
	once   sync.Once
	lagged bool
}

// Subscribe returns a subscription to the events match accepts (nil: all).
// It fails with a fault.Unavailable error when the bus has MaxClients
// subscribers, and once the bus is closed.
func (b *Bus) Subscribe(match func(api.Event) bool) (*Sub, error) {
	max, buf := b.MaxClients, b.Buffer
	if max <= 0 {
		max = 64
	}
	if buf <= 0 {
		buf = 256
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fault.Errorf(fault.Unavailable, "the event stream is shutting down")
	}
	if len(b.subs) >= max {
		return nil, fault.Errorf(fault.Unavailable, "too many event stream clients (%d); try again later", max)
	}
	if b.subs == nil {
		b.subs = map[*Sub]struct{}{}
	}
	c := make(chan api.Event, buf)
	s := &Sub{C: c, c: c, match: match, bus: b}
	b.subs[s] = struct{}{}
	return s, nil
}

// Lagged reports whether the subscription ended because its subscriber
// fell behind.
func (s *Sub) Lagged() bool {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.lagged
}

// Close ends the subscription; closing twice is a no-op.
func (s *Sub) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	s.endLocked()
}

func (s *Sub) endLocked() {
	s.once.Do(func() {
		delete(s.bus.subs, s)
		close(s.c)
	})
}

// Clients is the number of subscribers.
func (b *Bus) Clients() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Publish numbers ev, stamps its time if unset, and hands it to every
// subscriber that accepts it, without blocking.
func (b *Bus) Publish(ev api.Event) {
	if ev.Time.IsZero() {
		if b.Now != nil {
			ev.Time = b.Now()
		} else {
			ev.Time = time.Now()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.seq++
	ev.Seq = b.seq
	for s := range b.subs {
		if s.match != nil && !s.match(ev) {
			continue
		}
		select {
		case s.c <- ev:
		default:
			s.lagged = true
			s.endLocked()
		}
	}
}

// Close ends every subscription and refuses new ones (bmid shutting down).
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		s.endLocked()
	}
}
