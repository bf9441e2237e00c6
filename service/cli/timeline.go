package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/clikit"
)

// followEvery is how often --follow asks bmid for new events (a variable
// for tests).
var followEvery = time.Second

// followTimeline calls emit with each event of a node's timeline not seen
// before, until ctx ends (then it returns nil) or a call fails. It is the
// one place that knows how new events arrive: pushed by bmid's event
// stream, or by asking every followEvery where the stream is not to be
// had.
var followTimeline = streamTimeline

func (a *app) timelineCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "timeline PROJECT NODE",
		Short: "Show what bmid saw of a node's boots: DHCP, iPXE binary and script, iSCSI logins",
		Long: `Show what bmid saw of a node's boots, oldest first: DHCP from the PXE ROM
and from iPXE, the iPXE binary and script served, and the iSCSI logins to
its disk (iPXE's, then the booted OS's, with another session id). bmid keeps
the last 64 events per node in its state store, until the node's boot config
is removed.

With --follow, print new events as they come until interrupted; with
-o json, one JSON object per event and line.`,
		Args: clikit.ExactArgs("PROJECT", "NODE"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			if follow {
				return a.followTimeline(ctx, c, args[0], args[1])
			}
			tl, err := c.NodeTimeline(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			t := table{head: timelineHead}
			for _, ev := range tl.Events {
				t.add(timelineRow(ev)...)
			}
			return a.show(tl, t)
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "print new events as they come, until interrupted")
	return cmd
}

var timelineHead = []string{"TIME", "STEP", "CLIENT", "DETAIL"}

func timelineRow(ev api.TimelineEvent) []string {
	detail := ev.Detail
	if ev.Initiator != "" || ev.Remote != "" {
		detail = strings.TrimSpace(fmt.Sprintf("%s from %s session %s %s", ev.Initiator, ev.Remote, ev.Session, detail))
	}
	return []string{ev.At.Local().Format("15:04:05.000"), ev.Step, first(ev.Client, "-"), detail}
}

func (a *app) followTimeline(ctx context.Context, c *client.Client, project, node string) error {
	w := a.env.Stdout
	if a.output == "table" {
		fmt.Fprintln(w, strings.Join(timelineHead, "\t"))
	}
	err := followTimeline(ctx, c, project, node, func(ev api.TimelineEvent) error {
		return a.printEvent(w, ev)
	})
	if ctx.Err() != nil {
		return nil // interrupted, or --timeout: following ends there
	}
	return err
}

// printEvent prints one followed event: a JSON line, or a table row.
func (a *app) printEvent(w io.Writer, ev api.TimelineEvent) error {
	if a.output == "json" || a.output == "yaml" {
		return json.NewEncoder(w).Encode(ev)
	}
	tw := tabwriter.NewWriter(w, 12, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(timelineRow(ev), "\t"))
	return tw.Flush()
}

// timelineSource is what pollTimeline reads.
type timelineSource interface {
	NodeTimeline(ctx context.Context, project, node string) (api.NodeTimeline, error)
}

// timelineFollower is what streamTimeline reads: the timeline, and the
// event stream that says when it grew.
type timelineFollower interface {
	timelineSource
	FollowEvents(ctx context.Context, f api.EventFilter, fn func(api.Event) error) error
}

// streamTimeline emits the node's timeline, then follows bmid's event
// stream for the node's boot steps and emits what each added (the
// timeline holds what the stream's events leave out: the client, the
// initiator and the session). When the stream cannot be had (an older
// bmid, bmid's limit of streams reached) or ends, it polls instead.
func streamTimeline(ctx context.Context, src timelineFollower, project, node string, emit func(api.TimelineEvent) error) error {
	e := &timelineEmitter{src: src, project: project, node: node, emit: emit}
	if err := e.catchUp(ctx); err != nil {
		return err
	}
	// Whatever ends the stream (no stream to be had, bmid restarting, a
	// read of the timeline failing) leaves polling to go on, or to report
	// the failure again.
	_ = src.FollowEvents(ctx, api.EventFilter{Project: project, Node: node}, func(ev api.Event) error {
		if ev.Type != api.EventBoot {
			return nil
		}
		return e.catchUp(ctx)
	})
	switch {
	case ctx.Err() != nil:
		return nil
	case e.err != nil:
		return e.err // the caller's emit failed: following ends
	}
	return e.poll(ctx)
}

// pollTimeline asks src for the node's timeline every followEvery and
// emits the events it has not emitted yet.
func pollTimeline(ctx context.Context, src timelineSource, project, node string, emit func(api.TimelineEvent) error) error {
	e := &timelineEmitter{src: src, project: project, node: node, emit: emit}
	return e.poll(ctx)
}

// timelineEmitter emits the events of a node's timeline not emitted yet:
// those after the last one it emitted (bmid drops a node's oldest events,
// so positions shift; times do not), and of those at that same instant,
// the ones not yet seen.
type timelineEmitter struct {
	src           timelineSource
	project, node string
	emit          func(api.TimelineEvent) error
	err           error // emit's error, when it failed

	last       time.Time
	seenAtLast map[string]bool
}

// catchUp reads the timeline and emits what is new.
func (e *timelineEmitter) catchUp(ctx context.Context) error {
	tl, err := e.src.NodeTimeline(ctx, e.project, e.node)
	if err != nil {
		return err
	}
	if e.seenAtLast == nil {
		e.seenAtLast = map[string]bool{}
	}
	for _, ev := range tl.Events {
		k := eventKey(ev)
		switch {
		case ev.At.Before(e.last), ev.At.Equal(e.last) && e.seenAtLast[k]:
			continue
		case ev.At.After(e.last):
			e.last, e.seenAtLast = ev.At, map[string]bool{}
		}
		e.seenAtLast[k] = true
		if err := e.emit(ev); err != nil {
			e.err = err
			return err
		}
	}
	return nil
}

// poll catches up every followEvery until ctx ends.
func (e *timelineEmitter) poll(ctx context.Context) error {
	tick := time.NewTicker(followEvery)
	defer tick.Stop()
	for {
		if err := e.catchUp(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// eventKey tells events of the same instant apart (time.Time values that
// came from JSON do not compare with ==).
func eventKey(ev api.TimelineEvent) string {
	return strings.Join([]string{ev.Step, ev.Client, ev.Detail, ev.Remote, ev.Initiator, ev.Session}, "\x00")
}
