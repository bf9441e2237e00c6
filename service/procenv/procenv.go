// Package procenv holds the Go runtime settings bmid serve runs with, and
// the environment that applies them.
//
// There is one: the runtime's system monitor (sysmon) is kept out of deep
// sleep. When every P of a Go process is idle, sysmon sleeps until the next
// system call or cgo call wakes it; it then polls every 20 µs until the
// process is idle again, and sleeps again. A disk served over iSCSI at
// queue depth 1 idles between every two I/Os, so each I/O pays that cycle,
// two to three thread wakeups, on top of its own. Measured on a 2-CPU VM
// with 4 KiB random reads (service/iscsi's BenchmarkISCSI): about 250 µs of
// the target's CPU time per I/O at queue depth 1 with the default, 200 µs
// with sysmon kept awake; about 115 against 100 µs at queue depth 16. An
// awake sysmon in an idle process wakes every 10 ms: about 100 wakeups a
// second.
//
// The runtime has one switch for this, and only as an environment variable
// read at start: GODEBUG=schedtrace=N keeps sysmon awake so that it can
// print a scheduler summary to stderr every N ms. N is the largest the
// runtime takes, 2147483647 ms (24.8 days), so a summary line ("SCHED
// ...") appears on stderr once in that time, or once at start on a
// machine up for longer than that; a crash dump also gets the scheduler's
// state. bmid serve calls Apply before anything else.
package procenv

import (
	"os"
	"strings"
	"syscall"
)

// Setting is the GODEBUG setting that keeps sysmon awake.
const Setting = "schedtrace=2147483647"

// OptOut is the environment variable that, set to "default", leaves the Go
// runtime's settings as they are.
const OptOut = "BMI_GO_RUNTIME"

// Env returns env with Setting added to GODEBUG, and whether that changed
// anything: not when it is already there, when GODEBUG already sets
// schedtrace (the operator's choice stands), or when OptOut is "default".
func Env(env []string) ([]string, bool) {
	godebug, at := "", -1
	for i, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue // not a variable
		}
		switch k {
		case OptOut:
			if v == "default" {
				return env, false
			}
		case "GODEBUG":
			godebug, at = v, i
		}
	}
	for _, s := range strings.Split(godebug, ",") {
		if k, _, _ := strings.Cut(strings.TrimSpace(s), "="); k == "schedtrace" {
			return env, false
		}
	}
	out := append([]string(nil), env...)
	if at < 0 {
		return append(out, "GODEBUG="+Setting), true
	}
	if godebug == "" {
		out[at] = "GODEBUG=" + Setting
	} else {
		out[at] = "GODEBUG=" + godebug + "," + Setting
	}
	return out, true
}

// Apply re-executes the running program (/proc/self/exe, with the same
// arguments and PID) with Env's environment, if that changes anything. It
// returns only when it did not: nil when nothing needed changing, else
// exec's error, and the program goes on with the runtime as it is.
func Apply() error {
	env, tune := Env(os.Environ())
	if !tune {
		return nil
	}
	return syscall.Exec("/proc/self/exe", os.Args, env)
}
