package iocheck

import (
	"regexp"
	"strconv"
)

// Line is one report line the workload prints (BMI-LAB-IO t=... writes=...),
// as read back from a console.
type Line struct {
	T, Writes, Reads, Errors, Mismatches int64
	// MaxStallMs is the longest I/O since the workload started,
	// WindowStallMs the longest within the line's second (an I/O still in
	// progress counts with its age).
	MaxStallMs, WindowStallMs int64
}

var (
	lineRE  = regexp.MustCompile(`BMI-LAB-IO t=(\d+) writes=(\d+) reads=(\d+) errors=(\d+) mismatches=(\d+) max_stall_ms=(\d+) window_stall_ms=(\d+)\s`)
	errorRE = regexp.MustCompile(`BMI-LAB-IO-ERROR [^\r\n]*`)
)

// ParseLines returns the report lines and the error lines (each up to the
// end of its line) in b, a console's bytes, in order. A report line cut
// short is not counted.
func ParseLines(b []byte) (lines []Line, errs []string) {
	for _, m := range lineRE.FindAllSubmatch(b, -1) {
		var v [7]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(string(m[i+1]), 10, 64)
		}
		lines = append(lines, Line{T: v[0], Writes: v[1], Reads: v[2], Errors: v[3], Mismatches: v[4], MaxStallMs: v[5], WindowStallMs: v[6]})
	}
	for _, m := range errorRE.FindAll(b, -1) {
		errs = append(errs, string(m))
	}
	return lines, errs
}
