package ceph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/bmi-go/bmi/service/fault"
)

// errClosed is returned (wrapped as fault.ErrUnavailable) by every call on a
// closed or nil Store or Image.
var errClosed = errors.New("closed")

// errnoOf returns the positive errno that a go-ceph error carries (go-ceph
// reports it negative through ErrorCode), or 0 when err carries none.
// errors.Is with syscall errnos never matches go-ceph errors.
func errnoOf(err error) syscall.Errno {
	var ec interface{ ErrorCode() int }
	if !errors.As(err, &ec) {
		return 0
	}
	c := ec.ErrorCode()
	if c < 0 {
		c = -c
	}
	return syscall.Errno(c)
}

// hint overrides the description of one errno for one operation: EBUSY
// means "has clones" to an unprotect and "is protected" to a snapshot
// removal.
type hint struct {
	errno syscall.Errno
	text  string
}

// errnoKinds is the one table from librbd/librados errnos to fault kinds,
// with the text used when the operation gives no hint.
var errnoKinds = map[syscall.Errno]struct {
	kind fault.Kind
	text string
}{
	syscall.ENOENT:       {fault.NotFound, "not found"},
	syscall.EEXIST:       {fault.Exists, "already exists"},
	syscall.EBUSY:        {fault.Conflict, "busy (in use, has clones, or protected)"},
	syscall.ENOTEMPTY:    {fault.Conflict, "has snapshots"},
	syscall.EROFS:        {fault.Conflict, "is read-only"},
	syscall.EXDEV:        {fault.Conflict, "is in another pool or namespace"},
	syscall.EINVAL:       {fault.Invalid, "invalid argument"},
	syscall.EDOM:         {fault.Invalid, "value out of range"},
	syscall.ERANGE:       {fault.Invalid, "value out of range"},
	syscall.EFBIG:        {fault.Invalid, "too large"},
	syscall.ENOSYS:       {fault.Invalid, "not supported by this cluster"},
	syscall.EOPNOTSUPP:   {fault.Invalid, "not supported by this cluster"},
	syscall.ETIMEDOUT:    {fault.Unavailable, "ceph did not answer in time"},
	syscall.EACCES:       {fault.Unavailable, "access denied by ceph (wrong key, user or cluster)"},
	syscall.EPERM:        {fault.Unavailable, "operation not permitted by ceph (client capabilities)"},
	syscall.ENOTCONN:     {fault.Unavailable, "not connected to ceph"},
	syscall.ESHUTDOWN:    {fault.Unavailable, "the ceph connection is shut down"},
	syscall.ECONNREFUSED: {fault.Unavailable, "ceph refused the connection"},
	syscall.EAGAIN:       {fault.Unavailable, "ceph asked to try again"},
	syscall.EIO:          {fault.Unavailable, "ceph i/o error"},
	syscall.ENOSPC:       {fault.Unavailable, "the ceph cluster is full"},
	syscall.EDQUOT:       {fault.Unavailable, "the ceph pool quota is exceeded"},
}

// mapError classifies an error of a Ceph call into a service/fault kind, in
// this one place. action names the operation and the user's objects
// (`remove image "x"`); hints reword an errno for that operation. The
// original error stays reachable with errors.As (its ErrorCode) and
// context errors stay reachable with errors.Is. nil stays nil.
func mapError(err error, action string, hints ...hint) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, errClosed):
		return fault.Errorf(fault.Unavailable, "ceph: %s: the ceph store or image is closed", action)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("ceph: %s: %w", action, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fault.Errorf(fault.Unavailable, "ceph: %s: deadline exceeded: %v", action, err)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fault.Errorf(fault.Invalid, "ceph: %s: beyond the end of the image: %v", action, err)
	}
	if k := fault.Of(err); k != fault.Internal {
		return fmt.Errorf("ceph: %s: %w", action, err) // already classified (name validation)
	}
	en := errnoOf(err)
	if en == syscall.ECANCELED {
		return fmt.Errorf("ceph: %s: %w (%v)", action, context.Canceled, err)
	}
	ek, ok := errnoKinds[en]
	if !ok {
		return fmt.Errorf("ceph: %s: %w", action, err)
	}
	text := ek.text
	for _, h := range hints {
		if h.errno == en {
			text = h.text
		}
	}
	return fault.Errorf(ek.kind, "ceph: %s: %s (%v)", action, text, err)
}
