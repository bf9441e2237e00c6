package guard

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(time.Minute, 3, func() time.Time { return now })
	for i := 0; i < 3; i++ {
		if l.Throttled("10.0.0.9") {
			t.Fatalf("throttled after %d failures, want after 3", i)
		}
		l.Fail("10.0.0.9")
	}
	if !l.Throttled("10.0.0.9") {
		t.Fatal("not throttled after 3 failures with burst 3")
	}
	if l.Throttled("10.0.0.10") || l.Throttled("") {
		t.Fatal("another key (or the empty key) is throttled")
	}
	now = now.Add(time.Minute)
	if l.Throttled("10.0.0.9") {
		t.Fatal("still throttled after one interval")
	}
	l.Fail("10.0.0.9")
	if !l.Throttled("10.0.0.9") {
		t.Fatal("one refilled failure used, want throttled again")
	}
}

func TestLimiterBounded(t *testing.T) {
	l := New(time.Minute, 1, nil)
	for i := 0; i < maxKeys+5; i++ {
		l.Fail(fmt.Sprint("user", i))
	}
	if len(l.m) > maxKeys {
		t.Fatalf("%d keys kept, want at most %d", len(l.m), maxKeys)
	}
}

func TestRefuse(t *testing.T) {
	l := New(time.Hour, 3, nil)
	for i := 0; i < 3; i++ {
		l.Fail("ip:10.0.0." + fmt.Sprint(i))
		l.Fail("user:bob")
	}
	tests := map[string]struct {
		source string
		want   bool
	}{
		"a source that failed":    {"ip:10.0.0.1", true},
		"a source that never did": {"ip:10.0.0.9", false},
	}
	for name, tc := range tests {
		if got := l.Refuse(tc.source, "user:bob"); got != tc.want {
			t.Errorf("%s: Refuse(%s, bob) = %v, want %v", name, tc.source, got, tc.want)
		}
	}
	if l.Refuse("ip:10.0.0.1", "user:alice") {
		t.Error("a source with one failure refused for another user")
	}
}
