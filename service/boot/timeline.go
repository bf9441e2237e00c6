package boot

import (
	"context"
	"net"
	"slices"
	"sync"
	"time"
)

// Step names one step a node takes on its way from power-on to its disk.
type Step string

// The steps, in the order a node normally takes them.
const (
	// StepDiscover: the DHCP server saw a DISCOVER from the node.
	StepDiscover Step = "dhcp-discover"
	// StepOffer: the DHCP server offered the node an address or boot file.
	StepOffer Step = "dhcp-offer"
	// StepAck: the DHCP server acknowledged the node's REQUEST.
	StepAck Step = "dhcp-ack"
	// StepBinary: the TFTP (or HTTP) server sent an iPXE binary in full.
	StepBinary Step = "ipxe-binary-served"
	// StepScript: the HTTP server sent the node's iPXE script.
	StepScript Step = "ipxe-script-served"
)

// Event is one step of one node's boot.
type Event struct {
	// MAC is the node's boot NIC.
	MAC net.HardwareAddr
	// Step is what happened.
	Step Step
	// At is when it happened.
	At time.Time
	// Detail is a short free-form note (file name, offered address, ...).
	Detail string
}

// Timeline records boot events in memory, per MAC, keeping the last Max
// events of each node (default 64).
type Timeline struct {
	// Max bounds the events kept per node; 0 means 64.
	Max int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	events map[string][]Event
}

// NewTimeline returns an empty memory timeline.
func NewTimeline() *Timeline { return &Timeline{} }

// Record stores ev; a zero ev.At is set to the current time.
func (t *Timeline) Record(_ context.Context, ev Event) {
	if ev.At.IsZero() {
		if t.Now != nil {
			ev.At = t.Now()
		} else {
			ev.At = time.Now()
		}
	}
	ev.MAC = slices.Clone(ev.MAC)
	max := t.Max
	if max <= 0 {
		max = 64
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.events == nil {
		t.events = map[string][]Event{}
	}
	k := ev.MAC.String()
	evs := append(t.events[k], ev)
	if len(evs) > max {
		evs = slices.Clone(evs[len(evs)-max:])
	}
	t.events[k] = evs
}

// Events returns the recorded events of the node with this MAC, oldest
// first.
func (t *Timeline) Events(mac net.HardwareAddr) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.events[mac.String()])
}

// Forget drops the events of one node (after deprovisioning).
func (t *Timeline) Forget(mac net.HardwareAddr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.events, mac.String())
}
