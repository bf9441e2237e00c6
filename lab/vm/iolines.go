package vm

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/bmi-go/bmi/lab/iocheck"
	"github.com/bmi-go/bmi/service/fault"
)

var (
	// StayUpRE matches the line of a stay-up node whose iscsid took over.
	StayUpRE = regexp.MustCompile(`BMI-LAB-STAYUP iscsid=synced session=(\S+) local_port=(\S+) recovery_tmo=(\d+)\s`)
)

// IOProgress is what a stay-up node's workload did after a console offset.
type IOProgress struct {
	// Stall is the longest I/O seen (window_stall_ms of every line).
	Stall time.Duration
	// Errors and Mismatches are counted since the offset (error lines
	// count when the totals do not show them yet).
	Errors, Mismatches int64
}

// WaitIO waits until the console shows, after offset from, at least
// writes more verified writes than its first report line there; it
// returns what the workload did meanwhile. Past timeout (or when ctx
// ends) the error names the last output.
func (c Console) WaitIO(ctx context.Context, from, writes int64, timeout time.Duration) (IOProgress, error) {
	for end := time.Now().Add(timeout); ; {
		raw, err := c.readFrom(from)
		if err != nil {
			return IOProgress{}, err
		}
		lines, errs := iocheck.ParseLines(raw)
		if len(lines) > 1 && lines[len(lines)-1].Writes-lines[0].Writes >= writes {
			var p IOProgress
			for _, l := range lines {
				p.Stall = max(p.Stall, time.Duration(l.WindowStallMs)*time.Millisecond)
			}
			last := lines[len(lines)-1]
			p.Errors, p.Mismatches = last.Errors-lines[0].Errors, last.Mismatches-lines[0].Mismatches
			if len(errs) > 0 && p.Errors+p.Mismatches == 0 {
				p.Errors = int64(len(errs))
			}
			return p, nil
		}
		if time.Now().After(end) || ctx.Err() != nil {
			tail, _ := c.Tail(2000)
			return IOProgress{}, fmt.Errorf("no I/O progress on %s within %v: %w; last output:\n%s", c.Path, timeout, fault.ErrUnavailable, tail)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}
