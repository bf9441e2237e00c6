package opjournal

import (
	"context"
	"encoding/json"
	"time"
)

// State is an operation's state.
type State string

// Operation states.
const (
	Running    State = "running"
	Done       State = "done"
	Failed     State = "failed"
	RolledBack State = "rolled_back"
)

// StepState is the journal state of one step: a step is "doing" from just
// before it acts until it is "done"; a rollback marks it "undoing", then
// "undone".
type StepState string

// Step states.
const (
	StepDoing   StepState = "doing"
	StepDone    StepState = "done"
	StepUndoing StepState = "undoing"
	StepUndone  StepState = "undone"
)

// Record is a journaled operation.
type Record struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Project   string `json:"project"`
	Target    string `json:"target"`
	Principal string `json:"principal"`
	// Gateway is the bmid that runs the operation (and recovers it after a
	// crash); "" when one bmid owns the journal.
	Gateway  string  `json:"gateway,omitempty"`
	State    State   `json:"state"`
	Error    string  `json:"error,omitempty"`
	Progress float64 `json:"progress"`
	// Data is the operation's data as journaled: a versioned envelope
	// ({"version":N,"data":{...}}), or, from a bmid before versioned data,
	// a flat object of strings (version 0).
	Data    json.RawMessage `json:"-"`
	Steps   []StepRecord    `json:"steps,omitempty"`
	Created time.Time       `json:"created"`
	Updated time.Time       `json:"updated"`
}

// StepRecord is one step's journal entry.
type StepRecord struct {
	Seq   int       `json:"seq"`
	Name  string    `json:"name"`
	State StepState `json:"state"`
	At    time.Time `json:"at"`
}

// Journal is where operations are written down (the state database).
type Journal interface {
	CreateOp(ctx context.Context, op Record) error
	SetOpData(ctx context.Context, id string, data json.RawMessage) error
	SetOpState(ctx context.Context, id string, st State, msg string) error
	SetOpProgress(ctx context.Context, id string, p float64) error
	MarkStep(ctx context.Context, opID string, seq int, name string, st StepState) error
	Op(ctx context.Context, id string) (Record, error)
	Ops(ctx context.Context, st State, limit int) ([]Record, error)
}

// Meta describes an operation for listings: whose project, about which
// object, started by whom.
type Meta struct {
	Project   string
	Target    string
	Principal string
}
