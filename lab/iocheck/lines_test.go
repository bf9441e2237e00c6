package iocheck

import (
	"reflect"
	"testing"
)

func TestParseLines(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		lines []Line
		errs  int
	}{
		{"none", "BMI-LAB-BOOTED n1 mode=ibft uptime=3\r\n", nil, 0},
		{"two lines with escapes", "\x1b[0mBMI-LAB-IO t=1 writes=10 reads=20 errors=0 mismatches=0 max_stall_ms=12 window_stall_ms=12\r\n" +
			"BMI-LAB-IO t=2 writes=30 reads=60 errors=0 mismatches=0 max_stall_ms=2500 window_stall_ms=2500\r\n",
			[]Line{{T: 1, Writes: 10, Reads: 20, MaxStallMs: 12, WindowStallMs: 12}, {T: 2, Writes: 30, Reads: 60, MaxStallMs: 2500, WindowStallMs: 2500}}, 0},
		{"an error line", "BMI-LAB-IO-ERROR t=3 op=write slot=4 offset=16384 err=\"input/output error\"\r\n" +
			"BMI-LAB-IO t=3 writes=30 reads=60 errors=1 mismatches=0 max_stall_ms=5 window_stall_ms=5\r\n",
			[]Line{{T: 3, Writes: 30, Reads: 60, Errors: 1, MaxStallMs: 5, WindowStallMs: 5}}, 1},
		{"a line cut short is not counted", "BMI-LAB-IO t=4 writes=30 reads=60 errors=0 mismatches=0 max_stall_ms=5 window_sta", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lines, errs := ParseLines([]byte(tc.in))
			if !reflect.DeepEqual(lines, tc.lines) || len(errs) != tc.errs {
				t.Fatalf("ParseLines = %+v, %q; want %+v and %d error lines", lines, errs, tc.lines, tc.errs)
			}
		})
	}
}
