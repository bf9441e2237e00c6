package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

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
