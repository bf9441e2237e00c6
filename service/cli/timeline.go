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
// one place that knows how new events arrive: today by asking every
// followEvery, later from bmid's event stream.
var followTimeline = pollTimeline

func (a *app) timelineCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "timeline PROJECT NODE",
		Short: "Show what bmid saw of a node's boots: DHCP, iPXE binary and script, iSCSI logins",
		Long: `Show what bmid saw of a node's boots, oldest first: DHCP from the PXE ROM
and from iPXE, the iPXE binary and script served, and the iSCSI logins to
its disk (iPXE's, then the booted OS's, with another session id). bmid keeps
the last 64 events per node in memory.

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

// pollTimeline asks src for the node's timeline every followEvery and
// emits the events it has not emitted yet: those after the last one it
// emitted (bmid drops a node's oldest events, so positions shift; times do
// not), and of those at that same instant, the ones not yet seen.
func pollTimeline(ctx context.Context, src timelineSource, project, node string, emit func(api.TimelineEvent) error) error {
	var last time.Time
	seenAtLast := map[string]bool{}
	tick := time.NewTicker(followEvery)
	defer tick.Stop()
	for {
		tl, err := src.NodeTimeline(ctx, project, node)
		if err != nil {
			return err
		}
		for _, ev := range tl.Events {
			k := eventKey(ev)
			switch {
			case ev.At.Before(last), ev.At.Equal(last) && seenAtLast[k]:
				continue
			case ev.At.After(last):
				last, seenAtLast = ev.At, map[string]bool{}
			}
			seenAtLast[k] = true
			if err := emit(ev); err != nil {
				return err
			}
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
