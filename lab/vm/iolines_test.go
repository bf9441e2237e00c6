package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestParseIO(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		lines []IOLine
		errs  int
	}{
		{"none", "BMI-LAB-BOOTED n1 mode=ibft uptime=3\r\n", nil, 0},
		{"two lines with escapes", "\x1b[0mBMI-LAB-IO t=1 writes=10 reads=20 errors=0 mismatches=0 max_stall_ms=12 window_stall_ms=12\r\n" +
			"BMI-LAB-IO t=2 writes=30 reads=60 errors=0 mismatches=0 max_stall_ms=2500 window_stall_ms=2500\r\n",
			[]IOLine{{T: 1, Writes: 10, Reads: 20, MaxStallMs: 12, WindowStallMs: 12}, {T: 2, Writes: 30, Reads: 60, MaxStallMs: 2500, WindowStallMs: 2500}}, 0},
		{"an error line", "BMI-LAB-IO-ERROR t=3 op=write slot=4 offset=16384 err=\"input/output error\"\r\n" +
			"BMI-LAB-IO t=3 writes=30 reads=60 errors=1 mismatches=0 max_stall_ms=5 window_stall_ms=5\r\n",
			[]IOLine{{T: 3, Writes: 30, Reads: 60, Errors: 1, MaxStallMs: 5, WindowStallMs: 5}}, 1},
		{"a line cut short is not counted", "BMI-LAB-IO t=4 writes=30 reads=60 errors=0 mismatches=0 max_stall_ms=5 window_sta", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lines, errs := ParseIO([]byte(tc.in))
			if !reflect.DeepEqual(lines, tc.lines) || len(errs) != tc.errs {
				t.Fatalf("ParseIO = %+v, %q; want %+v and %d error lines", lines, errs, tc.lines, tc.errs)
			}
		})
	}
}

func TestWaitIO(t *testing.T) {
	line := func(tm, w, e, m, stall int) string {
		return fmt.Sprintf("BMI-LAB-IO t=%d writes=%d reads=%d errors=%d mismatches=%d max_stall_ms=%d window_stall_ms=%d\r\n", tm, w, 2*w, e, m, stall, stall)
	}
	tests := []struct {
		name    string
		console string
		want    IOProgress
		fail    bool
	}{
		{"progress with a stall", line(1, 10, 0, 0, 5) + line(2, 10, 0, 0, 1500) + line(3, 50, 0, 0, 20), IOProgress{Stall: 1500 * time.Millisecond}, false},
		{"errors counted since the offset", line(1, 10, 2, 0, 5) + "BMI-LAB-IO-ERROR t=1 op=read slot=3 offset=12288 err=\"EIO\"\r\n" + line(2, 60, 3, 1, 9),
			IOProgress{Stall: 9 * time.Millisecond, Errors: 1, Mismatches: 1}, false},
		{"no progress", line(1, 10, 0, 0, 5) + line(2, 12, 0, 0, 900), IOProgress{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Console{Path: filepath.Join(t.TempDir(), "console.log")}
			if err := os.WriteFile(c.Path, []byte("boot noise\r\n"+tc.console), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := c.WaitIO(context.Background(), int64(len("boot noise\r\n")), 30, 300*time.Millisecond)
			if (err != nil) != tc.fail || got != tc.want {
				t.Fatalf("WaitIO = %+v, %v; want %+v, failure %v", got, err, tc.want, tc.fail)
			}
		})
	}
}
