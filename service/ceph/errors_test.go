package ceph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/bmi-go/bmi/service/fault"
)

// cephErr imitates go-ceph's error type: a negative errno behind ErrorCode.
type cephErr int

func (e cephErr) Error() string  { return fmt.Sprintf("rbd: ret=%d, %s", int(e), syscall.Errno(-e)) }
func (e cephErr) ErrorCode() int { return int(e) }

func TestMapError(t *testing.T) {
	tests := map[string]struct {
		err   error
		hints []hint
		kind  fault.Kind
		text  string
	}{
		"ENOENT wrapped like rbd.ErrNotFound": {fmt.Errorf("RBD image not found: %w", cephErr(-2)), nil, fault.NotFound, "not found"},
		"EEXIST":                              {cephErr(-17), nil, fault.Exists, "already exists"},
		"EBUSY default":                       {cephErr(-16), nil, fault.Conflict, "busy"},
		"EBUSY with hint":                     {cephErr(-16), []hint{{syscall.EBUSY, "snapshot has clones"}}, fault.Conflict, "snapshot has clones"},
		"hint for another errno":              {cephErr(-16), []hint{{syscall.EINVAL, "nope"}}, fault.Conflict, "busy"},
		"ENOTEMPTY":                           {cephErr(-39), nil, fault.Conflict, "has snapshots"},
		"EINVAL":                              {cephErr(-22), nil, fault.Invalid, "invalid argument"},
		"EDOM":                                {cephErr(-33), nil, fault.Invalid, "out of range"},
		"ETIMEDOUT":                           {cephErr(-110), nil, fault.Unavailable, "in time"},
		"EACCES":                              {cephErr(-13), nil, fault.Unavailable, "access denied"},
		"ENOSPC":                              {cephErr(-28), nil, fault.Unavailable, "full"},
		"positive errno too":                  {cephErr(16), nil, fault.Conflict, "busy"},
		"closed":                              {errClosed, nil, fault.Unavailable, "closed"},
		"deadline":                            {context.DeadlineExceeded, nil, fault.Unavailable, "deadline"},
		"write past the end":                  {io.EOF, nil, fault.Invalid, "beyond the end"},
		"already classified":                  {fault.Errorf(fault.Invalid, "image name %q is empty", ""), nil, fault.Invalid, "is empty"},
		"unknown errno":                       {cephErr(-71), nil, fault.Internal, "ret=-71"},
		"no errno at all":                     {errors.New("weird"), nil, fault.Internal, "weird"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := mapError(tc.err, `remove image "x"`, tc.hints...)
			if got := fault.Of(err); got != tc.kind {
				t.Fatalf("kind = %s, want %s (%v)", got, tc.kind, err)
			}
			if !strings.Contains(err.Error(), tc.text) || !strings.Contains(err.Error(), `remove image "x"`) {
				t.Fatalf("message %q lacks %q or the action", err, tc.text)
			}
			var ce cephErr
			if errors.As(tc.err, &ce) && (!errors.As(err, &ce) || errnoOf(err) != errnoOf(tc.err)) {
				t.Fatalf("the errno is no longer reachable through %v", err)
			}
		})
	}
}

func TestMapErrorCancel(t *testing.T) {
	for name, in := range map[string]error{"ECANCELED from librbd": cephErr(-125), "context": context.Canceled} {
		t.Run(name, func(t *testing.T) {
			if err := mapError(in, "flatten image \"c\""); !errors.Is(err, context.Canceled) {
				t.Fatalf("mapError(%v) = %v, want context.Canceled in the chain", in, err)
			}
		})
	}
	if mapError(nil, "x") != nil {
		t.Fatal("mapError(nil) != nil")
	}
}
