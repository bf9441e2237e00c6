package api

import (
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
)

// ErrorBody is the body of every JSON API error:
// {"error": {"kind": "not_found", "message": "..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong: Kind is a fault.Kind string.
type ErrorDetail struct {
	Kind      string `json:"kind"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// Error is an error received from the API. It unwraps to the fault
// sentinel of its kind, so errors.Is(err, fault.ErrNotFound) works across
// the wire.
type Error struct {
	Status  int
	Kind    fault.Kind
	Message string
}

// Error returns the server's message (or the kind and status without one).
func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s (HTTP %d)", fault.Sentinel(e.Kind), e.Status)
	}
	return e.Message
}

// Unwrap returns the sentinel of the error's kind.
func (e *Error) Unwrap() error { return fault.Sentinel(e.Kind) }
