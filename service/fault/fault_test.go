package fault

import (
	"errors"
	"fmt"
	"testing"
)

func TestOf(t *testing.T) {
	tests := map[string]struct {
		err  error
		want Kind
	}{
		"nil":            {nil, ""},
		"plain":          {errors.New("boom"), Internal},
		"sentinel":       {ErrNotFound, NotFound},
		"wrapped":        {fmt.Errorf("image %q: %w", "x", ErrExists), Exists},
		"double wrapped": {fmt.Errorf("op: %w", fmt.Errorf("ceph: %w", ErrUnavailable)), Unavailable},
		"errorf":         {Errorf(Conflict, "image %q has clones", "x"), Conflict},
		"joined":         {errors.Join(errors.New("a"), ErrForbidden), Forbidden},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Of(tc.err); got != tc.want {
				t.Fatalf("Of(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestSentinelRoundTrip(t *testing.T) {
	for _, e := range all {
		if got := Of(Sentinel(e.kind)); got != e.kind {
			t.Errorf("Of(Sentinel(%q)) = %q", e.kind, got)
		}
	}
	if Sentinel("no-such-kind") != ErrInternal {
		t.Error("Sentinel of an unknown kind is not ErrInternal")
	}
}

func TestErrorfKeepsCause(t *testing.T) {
	cause := &myErr{}
	err := Errorf(Unavailable, "ceph: %v", cause)
	if err.Error() != "ceph: mine" {
		t.Fatalf("message = %q", err.Error())
	}
	var target *myErr
	if !errors.As(err, &target) {
		t.Fatal("errors.As does not reach the cause")
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatal("errors.Is does not reach the kind")
	}
}

type myErr struct{}

func (*myErr) Error() string { return "mine" }
