package cli

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/api"
)

// seqSource answers NodeTimeline with its timelines in turn and cancels
// the follow once they are all served.
type seqSource struct {
	seq    [][]api.TimelineEvent
	cancel context.CancelFunc
	calls  int
}

func (s *seqSource) NodeTimeline(context.Context, string, string) (api.NodeTimeline, error) {
	i := min(s.calls, len(s.seq)-1)
	s.calls++
	if s.calls >= len(s.seq) {
		s.cancel()
	}
	return api.NodeTimeline{Events: s.seq[i]}, nil
}

func TestPollTimeline(t *testing.T) {
	defer func(d time.Duration) { followEvery = d }(followEvery)
	followEvery = time.Millisecond
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	// ev makes an event at t0+sec; JSON round trip, as from bmid, so
	// that equal instants are not == values.
	ev := func(sec int, step string) api.TimelineEvent {
		b, _ := json.Marshal(api.TimelineEvent{At: t0.Add(time.Duration(sec) * time.Second).In(time.FixedZone("x", 3600)), Step: step})
		var e api.TimelineEvent
		_ = json.Unmarshal(b, &e)
		return e
	}
	ctx, cancel := context.WithCancel(context.Background())
	src := &seqSource{cancel: cancel, seq: [][]api.TimelineEvent{
		{ev(1, "a"), ev(2, "b")},
		{ev(1, "a"), ev(2, "b"), ev(2, "c")},             // a new event at the same instant
		{ev(2, "b"), ev(2, "c"), ev(3, "d"), ev(4, "e")}, // the oldest dropped
		{ev(2, "c"), ev(3, "d"), ev(4, "e")},
	}}
	var got []string
	err := pollTimeline(ctx, src, "p", "n", func(e api.TimelineEvent) error {
		got = append(got, e.Step)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a b c d e"; joinSteps(got) != want {
		t.Fatalf("followed %q, want each event once: %q", joinSteps(got), want)
	}

	boom := errors.New("boom")
	src = &seqSource{cancel: func() {}, seq: [][]api.TimelineEvent{{ev(1, "a")}}}
	if err := pollTimeline(context.Background(), src, "p", "n", func(api.TimelineEvent) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("an emit error gave %v", err)
	}
}

func joinSteps(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

// streamSource is a seqSource whose event stream delivers boot events
// (and an operation's, which must not count), then blocks until the
// context ends, or fails at once when down.
type streamSource struct {
	*seqSource
	events []api.Event
	down   bool
	opened int
}

func (s *streamSource) FollowEvents(ctx context.Context, _ api.EventFilter, fn func(api.Event) error) error {
	s.opened++
	if s.down {
		return errors.New("no event stream here")
	}
	for _, ev := range s.events {
		if err := fn(ev); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestStreamTimeline: the follow reads the timeline at each boot event of
// the stream (and only then: the stream blocks, nothing polls), and polls
// where there is no stream.
func TestStreamTimeline(t *testing.T) {
	defer func(d time.Duration) { followEvery = d }(followEvery)
	followEvery = time.Millisecond
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ev := func(sec int, step string) api.TimelineEvent {
		return api.TimelineEvent{At: t0.Add(time.Duration(sec) * time.Second), Step: step}
	}
	seq := func(cancel func()) *seqSource {
		return &seqSource{cancel: cancel, seq: [][]api.TimelineEvent{
			{ev(1, "a")},
			{ev(1, "a"), ev(2, "b")},
			{ev(1, "a"), ev(2, "b"), ev(3, "c")},
		}}
	}
	boot := api.Event{Type: api.EventBoot, Step: "dhcp-offer"}
	for name, down := range map[string]bool{"stream": false, "no stream: polls": true} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			src := &streamSource{seqSource: seq(cancel), down: down,
				events: []api.Event{boot, {Type: api.EventOperation}, boot}}
			var got []string
			if err := streamTimeline(ctx, src, "p", "n", func(e api.TimelineEvent) error {
				got = append(got, e.Step)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if joinSteps(got) != "a b c" || src.opened != 1 {
				t.Fatalf("followed %q with %d stream(s) opened, want \"a b c\" and 1", joinSteps(got), src.opened)
			}
			if !down && src.calls != 3 {
				t.Fatalf("read the timeline %d times with a stream, want 3 (once, then at each boot event)", src.calls)
			}
		})
	}
}
