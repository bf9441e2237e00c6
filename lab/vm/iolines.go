package vm

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// IOLine is one report line of a stay-up node's verifying workload
// (lab/iocheck): BMI-LAB-IO t=... writes=... and so on.
type IOLine struct {
	T, Writes, Reads, Errors, Mismatches int64
	// MaxStallMs is the longest I/O since the workload started,
	// WindowStallMs the longest within the line's second (an I/O still in
	// progress counts with its age).
	MaxStallMs, WindowStallMs int64
}

var (
	// IORE matches a BMI-LAB-IO report line.
	IORE = regexp.MustCompile(`BMI-LAB-IO t=(\d+) writes=(\d+) reads=(\d+) errors=(\d+) mismatches=(\d+) max_stall_ms=(\d+) window_stall_ms=(\d+)\s`)
	// IOErrorRE matches a BMI-LAB-IO-ERROR line (a failed I/O or a block
	// that does not hold what was written), up to the end of the line.
	IOErrorRE = regexp.MustCompile(`BMI-LAB-IO-ERROR [^\r\n]*`)
	// StayUpRE matches the line of a stay-up node whose iscsid took over.
	StayUpRE = regexp.MustCompile(`BMI-LAB-STAYUP iscsid=synced session=(\S+) local_port=(\S+) recovery_tmo=(\d+)\s`)
)

// ParseIO returns the report lines and the error lines in b, in order.
func ParseIO(b []byte) (lines []IOLine, errs []string) {
	for _, m := range IORE.FindAllSubmatch(b, -1) {
		var v [7]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(string(m[i+1]), 10, 64)
		}
		lines = append(lines, IOLine{T: v[0], Writes: v[1], Reads: v[2], Errors: v[3], Mismatches: v[4], MaxStallMs: v[5], WindowStallMs: v[6]})
	}
	for _, m := range IOErrorRE.FindAll(b, -1) {
		errs = append(errs, string(m))
	}
	return lines, errs
}

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
		lines, errs := ParseIO(raw)
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
