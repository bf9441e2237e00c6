//go:build ceph_preview

package ceph

import (
	"context"
	"errors"
	"syscall"

	"github.com/bmi-go/bmi/service/fault"
)

// ErrorObserver hears every failed Ceph call, for metrics: kind is
// "timeout" (the cluster did not answer within the op timeout) or the
// fault kind of the error ("unavailable", "not_found", "conflict", ...).
// It must be quick and safe for concurrent use.
type ErrorObserver interface {
	CephError(kind string)
}

// SetErrorObserver makes o hear every failed call from now on (nil: none).
// Call it before the Store is shared.
func (s *Store) SetErrorObserver(o ErrorObserver) { s.errs = o }

// fail is mapError that also tells the error observer and, when the
// cluster did not answer within the op timeout, the outage gate (outage);
// a cancelled call is not a Ceph error and is not counted.
func (s *Store) fail(err error, action string, hints ...hint) error {
	mapped := mapError(err, action, hints...)
	if mapped == nil || s == nil || errors.Is(mapped, context.Canceled) {
		return mapped
	}
	timedOut := errnoOf(err) == syscall.ETIMEDOUT
	if timedOut {
		s.noteTimeout(action)
	}
	if s.errs == nil {
		return mapped
	}
	kind := string(fault.Of(mapped))
	if timedOut || errors.Is(err, context.DeadlineExceeded) {
		kind = "timeout"
	}
	s.errs.CephError(kind)
	return mapped
}

// fail is Store.fail for a call on an image (nil-safe).
func (im *Image) fail(err error, action string, hints ...hint) error {
	if im == nil {
		return mapError(err, action, hints...)
	}
	return im.s.fail(err, action, hints...)
}
