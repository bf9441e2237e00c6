package api

import "time"

// Event types of the event stream (GET /api/v1/events).
const (
	// EventOperation: an operation started or reached an end state.
	EventOperation = "operation"
	// EventBoot: a node took a step of its boot.
	EventBoot = "boot"
)

// BootCompleted is the boot step of an event sent when a node's disk is
// logged in to for the first time after its boot started (iPXE's sanboot).
const BootCompleted = "iscsi-login"

// Event is one message of the event stream (the data of one Server-Sent
// Event whose event name is Type and whose id is Seq). It never carries a
// secret: no CHAP secret, no boot token, no credential.
type Event struct {
	// Seq numbers the events of one bmid run, from 1.
	Seq uint64 `json:"seq"`
	// Time is when it happened.
	Time time.Time `json:"time"`
	// Type is EventOperation or EventBoot.
	Type string `json:"type"`
	// Project is the project the operation or the node's boot belongs to.
	Project string `json:"project"`
	// Node is the node of a boot event, and of an operation on a node.
	Node string `json:"node,omitempty"`
	// Operation is the operation's state (EventOperation), without its steps.
	Operation *Operation `json:"operation,omitempty"`
	// Step is the boot step (EventBoot): dhcp-discover, dhcp-offer,
	// dhcp-ack, ipxe-binary-served, ipxe-script-served or iscsi-login.
	Step string `json:"step,omitempty"`
	// Detail is a short note on a boot step (address, file name); never a
	// URL's query.
	Detail string `json:"detail,omitempty"`
}

// EventFilter selects events of the stream: empty fields select all.
type EventFilter struct {
	// Project keeps the events of one project.
	Project string
	// Node keeps the events of one node.
	Node string
	// Operation keeps the events of one operation (by ID).
	Operation string
}

// Match reports whether ev passes the filter.
func (f EventFilter) Match(ev Event) bool {
	if f.Project != "" && ev.Project != f.Project {
		return false
	}
	if f.Node != "" && ev.Node != f.Node {
		return false
	}
	if f.Operation != "" && (ev.Operation == nil || ev.Operation.ID != f.Operation) {
		return false
	}
	return true
}
