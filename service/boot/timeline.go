package boot

import (
	"context"
	"net"
	"slices"
	"strings"
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
	// StepLogin: the iSCSI target accepted a login to the node's disk
	// (Client says whether from iPXE or from the booted OS).
	StepLogin Step = "iscsi-login"
	// StepLoginRefused: the iSCSI target refused a login to the node's
	// disk (Detail says why).
	StepLoginRefused Step = "iscsi-login-refused"
)

// Who sent a DHCP request or logged in to a disk, as far as the server can
// tell from the packet or the login.
const (
	// ClientPXE is the NIC's PXE ROM (or UEFI network stack): a DHCP
	// request with a client architecture and without iPXE's user class.
	ClientPXE = "pxe-rom"
	// ClientIPXE is iPXE: user class "iPXE", or an iSCSI login with
	// iPXE's session identifier.
	ClientIPXE = "ipxe"
	// ClientOS is the node's booted operating system: a DHCP request
	// without a client architecture, or an iSCSI login with any other
	// session identifier.
	ClientOS = "os"
)

// Event is one step of one node's boot.
type Event struct {
	// MAC is the node's boot NIC.
	MAC net.HardwareAddr
	// Step is what happened.
	Step Step
	// At is when it happened.
	At time.Time
	// Detail is a short free-form note (file name, offered address, ...);
	// Record strips URL queries from it (they may hold one-time tokens).
	Detail string
	// Client is who sent it (ClientPXE, ClientIPXE, ClientOS), "" when
	// the server cannot tell.
	Client string
	// Remote is the source address (no port) of an iSCSI login.
	Remote string
	// Initiator is the initiator name of an iSCSI login.
	Initiator string
	// Session is the iSCSI session identifier (ISID, 12 hex digits) of a
	// login: iPXE and the booted OS log in with different ones.
	Session string
}

// kept is ev as a timeline keeps it: stamped with now() (time.Now when
// nil) if its time is zero, with a MAC of its own and its detail
// redacted.
func (ev Event) kept(now func() time.Time) Event {
	if ev.At.IsZero() {
		if now == nil {
			now = time.Now
		}
		ev.At = now()
	}
	ev.MAC = slices.Clone(ev.MAC)
	ev.Detail = Redact(ev.Detail)
	return ev
}

// Timeline records boot events in memory, per MAC, keeping the last Max
// events of each node (default 64): the boot services' tests read it;
// bmid keeps its timeline in the state store (Shared).
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
	ev = ev.kept(t.Now)
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

// NodeEvents is Events in the form the API reads a timeline (a
// Shared one reads a database).
func (t *Timeline) NodeEvents(_ context.Context, mac net.HardwareAddr) ([]Event, error) {
	return t.Events(mac), nil
}

// Forget drops the events of one node (after deprovisioning).
func (t *Timeline) Forget(mac net.HardwareAddr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.events, mac.String())
}

// Redact removes the query of every URL in s ("http://h/boot/m.ipxe?token=x"
// becomes "http://h/boot/m.ipxe?…"): a boot script URL's query may hold a
// one-time token, and a timeline is readable by the node's project.
func Redact(s string) string {
	if !strings.Contains(s, "?") {
		return s
	}
	words := strings.Fields(s)
	for i, w := range words {
		if j := strings.IndexByte(w, '?'); j >= 0 {
			words[i] = w[:j] + "?…"
		}
	}
	return strings.Join(words, " ")
}

// IPXEISID reports whether isid (12 hex digits) is one iPXE uses: iPXE
// logs in with an ISID of the IANA enterprise number format (type 01b)
// naming Fen Systems (enterprise 10019), "40002723" followed by a random
// qualifier, so it tells iPXE's login from the booted OS's.
func IPXEISID(isid string) bool {
	return strings.HasPrefix(strings.ToLower(isid), "40002723")
}
