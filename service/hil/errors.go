package hil

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/bmi-go/bmi/service/fault"
)

// Error is a refusal or failure HIL reported: its status and its JSON
// error body {"type", "msg"}. It unwraps to the fault sentinel of its
// kind, so callers test errors.Is(err, fault.ErrNotFound) and reach HIL's
// own words with errors.As.
type Error struct {
	// Op names the call and its objects, e.g. `show node "node-01"`.
	Op string
	// Status is the HTTP status HIL answered.
	Status int
	// Type is HIL's error class (NotFoundError, BlockedError...), or empty
	// when the body was not HIL's error JSON.
	Type string
	// Msg is HIL's message (or the start of a non-JSON body).
	Msg string
	// Kind is the fault kind the error was classified as.
	Kind fault.Kind
}

// Error says which call failed, HIL's message, status and error type.
func (e *Error) Error() string {
	t := e.Type
	if t == "" {
		t = http.StatusText(e.Status)
	}
	return fmt.Sprintf("hil: %s: %s (%d %s)", e.Op, e.Msg, e.Status, t)
}

// Unwrap returns the fault sentinel of the error's kind.
func (e *Error) Unwrap() error { return fault.Sentinel(e.Kind) }

// kindOf classifies HIL's answer. HIL answers 401 AuthorizationError both
// when the credentials are refused and when the user lacks access; the
// caller tells them apart (see Client.classify401), so 401 is reported as
// Unauthenticated here.
//
//	400 (ValidationError, BadArgumentError)        → Invalid
//	401 AuthorizationError                         → Unauthenticated or Forbidden
//	403                                            → Forbidden
//	404 NotFoundError                              → NotFound
//	409 DuplicateError                             → Exists
//	409 BlockedError, ProjectMismatchError, ...    → Conflict
//	500 OBMError, SwitchError (hardware failed)    → Unavailable
//	502, 503, 504                                  → Unavailable
//	other 5xx (ServerError, AllocationError...)    → Internal, HIL's msg kept
func kindOf(status int, typ string) fault.Kind {
	switch {
	case status == http.StatusBadRequest:
		return fault.Invalid
	case status == http.StatusUnauthorized:
		return fault.Unauthenticated
	case status == http.StatusForbidden:
		return fault.Forbidden
	case status == http.StatusNotFound:
		return fault.NotFound
	case status == http.StatusConflict && typ == "DuplicateError":
		return fault.Exists
	case status == http.StatusConflict:
		return fault.Conflict
	case status == http.StatusInternalServerError && (typ == "OBMError" || typ == "SwitchError"):
		return fault.Unavailable
	case status == http.StatusBadGateway, status == http.StatusServiceUnavailable, status == http.StatusGatewayTimeout:
		return fault.Unavailable
	case status >= 400 && status < 500:
		return fault.Invalid
	}
	return fault.Internal
}

// isHILError reports whether err carries HIL's answer, and returns it
// (tests use it through export_test.go).
func isHILError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
