// Package fault defines the few kinds of failure that every layer of BMI
// classifies its errors into.
//
// Packages wrap one of the sentinel errors below with %w and add context
// that names the user's objects:
//
//	return fmt.Errorf("image %q in project %q: %w", name, project, fault.ErrNotFound)
//
// The API server maps kinds to HTTP status codes in exactly one place, the
// CLI maps them to exit codes, and the API client turns a kind received over
// the wire back into the same sentinel, so errors.Is works end to end.
package fault

import (
	"errors"
	"fmt"
)

// Kind names a class of failure. Its string form is stable: it travels in
// API error bodies ({"error": {"kind": "not_found", ...}}).
type Kind string

// The kinds, in the order Of tests them.
const (
	NotFound        Kind = "not_found"
	Exists          Kind = "exists"
	Conflict        Kind = "conflict"
	Forbidden       Kind = "forbidden"
	Unauthenticated Kind = "unauthenticated"
	Invalid         Kind = "invalid"
	Unavailable     Kind = "unavailable"
	Internal        Kind = "internal"
)

// Sentinel errors, one per kind. Wrap them; never compare with ==.
var (
	// ErrNotFound: the named object does not exist (or the caller may not
	// know that it does).
	ErrNotFound = &kindError{NotFound, "not found"}
	// ErrExists: an object with that name already exists.
	ErrExists = &kindError{Exists, "already exists"}
	// ErrConflict: the object is busy or in a state that forbids the
	// operation (has clones, protected, in use, another operation holds it).
	ErrConflict = &kindError{Conflict, "conflict"}
	// ErrForbidden: the principal is known but may not do this.
	ErrForbidden = &kindError{Forbidden, "forbidden"}
	// ErrUnauthenticated: no credentials, or credentials that were refused.
	ErrUnauthenticated = &kindError{Unauthenticated, "unauthenticated"}
	// ErrInvalid: bad input (name, size, value); nothing was changed.
	ErrInvalid = &kindError{Invalid, "invalid argument"}
	// ErrUnavailable: a dependency (Ceph, HIL, the database) cannot be
	// reached or timed out; the same call may succeed later.
	ErrUnavailable = &kindError{Unavailable, "unavailable"}
	// ErrInternal: a bug or an unexpected state; details go to the log.
	ErrInternal = &kindError{Internal, "internal error"}
)

var all = []*kindError{ErrNotFound, ErrExists, ErrConflict, ErrForbidden,
	ErrUnauthenticated, ErrInvalid, ErrUnavailable, ErrInternal}

type kindError struct {
	kind Kind
	msg  string
}

func (e *kindError) Error() string { return e.msg }

// Of returns the kind of err: the first sentinel found in its chain, or
// Internal when there is none. Of(nil) is the empty Kind.
func Of(err error) Kind {
	if err == nil {
		return ""
	}
	for _, k := range all {
		if errors.Is(err, k) {
			return k.kind
		}
	}
	return Internal
}

// Sentinel returns the sentinel error of kind k (ErrInternal for an unknown
// kind), for clients that rebuild errors received over the wire.
func Sentinel(k Kind) error {
	for _, e := range all {
		if e.kind == k {
			return e
		}
	}
	return ErrInternal
}

// Errorf formats a message and wraps the sentinel of kind k, so that
// Of(Errorf(k, ...)) == k. The message is used as is, without the kind's own
// text appended: "image \"x\" has clones" rather than "...: conflict".
func Errorf(k Kind, format string, args ...any) error {
	return &wrapped{msg: fmt.Sprintf(format, args...), kind: Sentinel(k), cause: causeOf(args)}
}

// causeOf returns the last error among args, so Errorf(k, "x: %v", err)
// still lets errors.As reach err.
func causeOf(args []any) error {
	for i := len(args) - 1; i >= 0; i-- {
		if e, ok := args[i].(error); ok {
			return e
		}
	}
	return nil
}

type wrapped struct {
	msg   string
	kind  error
	cause error
}

func (w *wrapped) Error() string { return w.msg }

func (w *wrapped) Unwrap() []error {
	if w.cause == nil {
		return []error{w.kind}
	}
	return []error{w.kind, w.cause}
}
