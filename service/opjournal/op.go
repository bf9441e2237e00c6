package opjournal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// DataVersion is the version of the data envelope this package writes.
// Version 0 is a flat JSON object of strings, as bmid journaled before
// operations had typed data.
const DataVersion = 1

// Step is one idempotent action of an operation and the action that undoes
// it. Both read and write only the operation's data (Run.Data), so a step
// list can be resumed or rolled back from the journal after a crash.
// Re-running a done step, and undoing a step that never acted, are
// harmless. Undo may be nil for a step that changes nothing an undo could
// restore (a check, or a step after the commit step).
type Step[D any] struct {
	Name string
	Do   func(ctx context.Context, r *Run[D]) error
	Undo func(ctx context.Context, r *Run[D]) error
}

// Op declares an operation: its kind (journaled, so never renamed), its
// steps in order, the name of its commit step (a failure before that step
// is done rolls the operation back, a failure after it is retried forward),
// and how to read data journaled in the flat format of version 0.
type Op[D any] struct {
	Kind   string
	Steps  []Step[D]
	Commit string
	// Legacy converts data journaled as a flat object of strings (version
	// 0) to D; nil: such data cannot be recovered.
	Legacy func(map[string]string) (D, error)
}

// Run is a running operation as its steps see it.
type Run[D any] struct {
	// ID is the operation's journal id.
	ID string
	// Data is the operation's data; what a step changes in it is
	// journaled before the step is marked done.
	Data D
	// Body is the stream an upload reads; it is not journaled (an
	// interrupted upload is rolled back, never resumed), so it is nil
	// after a crash.
	Body io.Reader
	// Size is Body's length in bytes.
	Size uint64

	j    Journal
	mu   sync.Mutex
	last time.Time
}

// Progress records the operation's progress, at most a few times a second.
// Progress is advisory: a failure to record it is not the operation's.
func (r *Run[D]) Progress(done, total uint64) {
	if total == 0 || r.j == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.last) < 250*time.Millisecond && done < total {
		return
	}
	r.last = time.Now()
	_ = r.j.SetOpProgress(context.WithoutCancel(context.Background()), r.ID, float64(done)/float64(total))
}

// envelope is the journaled form of an operation's data.
type envelope struct {
	Version int             `json:"version"`
	Data    json.RawMessage `json:"data"`
}

func (op *Op[D]) encode(d D) (json.RawMessage, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("%s: encode data: %w", op.Kind, err)
	}
	return json.Marshal(envelope{Version: DataVersion, Data: b})
}

func (op *Op[D]) decode(raw json.RawMessage) (D, error) {
	var zero D
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return zero, fault.Errorf(fault.Internal, "%s: journaled data is not a JSON object: %v", op.Kind, err)
	}
	if _, versioned := probe["version"]; !versioned {
		var flat map[string]string
		if err := json.Unmarshal(raw, &flat); err != nil {
			return zero, fault.Errorf(fault.Internal, "%s: journaled data of version 0: %v", op.Kind, err)
		}
		if op.Legacy == nil {
			return zero, fault.Errorf(fault.Internal, "%s: data journaled in version 0 cannot be read", op.Kind)
		}
		return op.Legacy(flat)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return zero, fault.Errorf(fault.Internal, "%s: journaled data: %v", op.Kind, err)
	}
	if env.Version != DataVersion {
		return zero, fault.Errorf(fault.Internal, "%s: data journaled in version %d; this bmid reads versions 0 to %d",
			op.Kind, env.Version, DataVersion)
	}
	var d D
	dec := json.NewDecoder(bytes.NewReader(env.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return zero, fault.Errorf(fault.Internal, "%s: journaled data: %v", op.Kind, err)
	}
	return d, nil
}

// check validates the declaration: steps named uniquely, each with an
// action, and the commit step among them.
func (op *Op[D]) check() error {
	if op.Kind == "" {
		return fault.Errorf(fault.Internal, "an operation without a kind")
	}
	seen := map[string]bool{}
	for _, st := range op.Steps {
		if st.Name == "" || st.Do == nil {
			return fault.Errorf(fault.Internal, "operation %s: a step needs a name and an action", op.Kind)
		}
		if seen[st.Name] {
			return fault.Errorf(fault.Internal, "operation %s: two steps named %q", op.Kind, st.Name)
		}
		seen[st.Name] = true
	}
	if op.commit() < 0 {
		return fault.Errorf(fault.Internal, "operation %s: commit step %q is not one of its steps", op.Kind, op.Commit)
	}
	return nil
}

// commit is the index of the commit step, -1 when it has none.
func (op *Op[D]) commit() int {
	for i, st := range op.Steps {
		if st.Name == op.Commit {
			return i
		}
	}
	return -1
}

func (op *Op[D]) kind() string { return op.Kind }

func (op *Op[D]) stepNames() []string {
	out := make([]string, len(op.Steps))
	for i, st := range op.Steps {
		out[i] = st.Name
	}
	return out
}
