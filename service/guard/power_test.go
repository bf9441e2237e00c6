package guard

import (
	"context"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/logging"
)

// fakePower answers PowerStatus from a table and counts the calls.
type fakePower struct {
	state map[string]string
	err   map[string]error
	calls int
}

func (f *fakePower) PowerStatus(_ context.Context, _ hil.Credentials, node string) (string, error) {
	f.calls++
	return f.state[node], f.err[node]
}

func TestPowerGate(t *testing.T) {
	f := &fakePower{state: map[string]string{"on": "on", "off": "off"}, err: map[string]error{
		"hil-down":  fault.Errorf(fault.Unavailable, "connection refused"),
		"forbidden": fault.Errorf(fault.Forbidden, "bmi may not see this node"),
	}}
	g := NewPowerGate(f, hil.Credentials{User: "bmi"}, time.Minute, logging.Discard())
	now := time.Unix(0, 0)
	g.now = func() time.Time { return now }
	tests := map[string]fault.Kind{"on": "", "off": fault.NotFound, "hil-down": "", "forbidden": fault.Unavailable}
	for node, want := range tests {
		if got := fault.Of(g.Allow(context.Background(), node)); got != want {
			t.Errorf("Allow(%s) kind %q, want %q", node, got, want)
		}
	}
	// "on" is trusted for the TTL, "off" never.
	calls := f.calls
	f.state["on"], f.state["off"] = "off", "on"
	if err := g.Allow(context.Background(), "on"); err != nil {
		t.Errorf("Allow(on) within the TTL = %v, want the cached on", err)
	}
	if err := g.Allow(context.Background(), "off"); err != nil {
		t.Errorf("Allow(off) after it came on = %v, want nil", err)
	}
	if f.calls != calls+1 {
		t.Errorf("HIL asked %d times, want 1 (cached on, fresh off)", f.calls-calls)
	}
	now = now.Add(2 * time.Minute)
	if fault.Of(g.Allow(context.Background(), "on")) != fault.NotFound {
		t.Error("Allow(on) after the TTL, now off: served")
	}
	var nilGate *PowerGate
	if nilGate.Allow(context.Background(), "x") != nil {
		t.Error("a nil gate refused")
	}
}
