package vm

import (
	"regexp"
	"strconv"
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
