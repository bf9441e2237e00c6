// Package proc runs the lab's external programs (ip, bridge, mkfs.fat,
// libvirtd, ...) and manages the daemons it leaves running: each is
// recorded by pid and kernel start time, so that a pid reused by an
// unrelated process is never signalled.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Run runs argv and returns its stdout. A failure carries the program's
// stderr (trimmed) so that the message says what went wrong.
func Run(ctx context.Context, argv ...string) (string, error) {
	return RunEnv(ctx, nil, argv...)
}

// RunEnv is Run with extra environment variables (KEY=VALUE).
func RunEnv(ctx context.Context, env []string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		if len(msg) > 400 {
			msg = msg[len(msg)-400:]
		}
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, msg)
	}
	return out.String(), nil
}

// ID names one process: its pid and its start time in clock ticks since
// boot (field 22 of /proc/PID/stat), which together are unique.
type ID struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// Self returns the ID of pid as it is now, or an error if it does not run.
func Self(pid int) (ID, error) {
	st, start, err := stat(pid)
	if err != nil {
		return ID{}, err
	}
	if st == "Z" || st == "X" {
		return ID{}, fmt.Errorf("process %d has exited", pid)
	}
	return ID{Pid: pid, Start: start}, nil
}

// stat returns the state letter and start time of pid.
func stat(pid int) (string, uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, fmt.Errorf("process %d: unreadable stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", 0, fmt.Errorf("process %d: short stat", pid)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("process %d: start time: %w", pid, err)
	}
	return f[0], start, nil
}

// Alive reports whether the process still runs: same pid, same start time,
// not a zombie (PID 1 may reap orphans late, so kill -0 is not enough).
func (id ID) Alive() bool {
	if id.Pid <= 0 {
		return false
	}
	st, start, err := stat(id.Pid)
	return err == nil && start == id.Start && st != "Z" && st != "X"
}

// Stop sends SIGTERM, waits up to grace for the process to exit, then
// sends SIGKILL and waits again. A process that is already gone is fine.
func (id ID) Stop(ctx context.Context, grace time.Duration) error {
	if !id.Alive() {
		return nil
	}
	_ = syscall.Kill(id.Pid, syscall.SIGTERM)
	if id.wait(ctx, grace) {
		return nil
	}
	_ = syscall.Kill(id.Pid, syscall.SIGKILL)
	if id.wait(ctx, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("process %d did not exit after SIGKILL", id.Pid)
}

// Kill sends SIGKILL, as a crash or a power loss of the process would end
// it, and waits for the process to be gone.
func (id ID) Kill(ctx context.Context) error {
	if !id.Alive() {
		return nil
	}
	_ = syscall.Kill(id.Pid, syscall.SIGKILL)
	if id.wait(ctx, 10*time.Second) {
		return nil
	}
	return fmt.Errorf("process %d did not exit after SIGKILL", id.Pid)
}

func (id ID) wait(ctx context.Context, d time.Duration) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if !id.Alive() {
			return true
		}
		select {
		case <-ctx.Done():
			return !id.Alive()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return !id.Alive()
}

// StopPids stops the given pids (as found now) with Stop; errors are joined.
func StopPids(ctx context.Context, pids []int, grace time.Duration) error {
	var ids []ID
	for _, p := range pids {
		if id, err := Self(p); err == nil {
			ids = append(ids, id)
			_ = syscall.Kill(p, syscall.SIGTERM)
		}
	}
	var errs []error
	for _, id := range ids {
		if !id.wait(ctx, grace) {
			_ = syscall.Kill(id.Pid, syscall.SIGKILL)
			if !id.wait(ctx, 5*time.Second) {
				errs = append(errs, fmt.Errorf("process %d did not exit after SIGKILL", id.Pid))
			}
		}
	}
	return errors.Join(errs...)
}

// StartDaemon starts argv detached from the caller (own session, stdin
// closed, stdout and stderr appended to logPath) and returns its ID. The
// process outlives the caller; a goroutine reaps it if it exits while the
// caller still runs.
func StartDaemon(argv []string, env []string, logPath string) (ID, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return ID{}, err
	}
	defer lf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return ID{}, fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() { _ = cmd.Wait() }()
	id, err := Self(cmd.Process.Pid)
	if err != nil {
		return ID{}, fmt.Errorf("start %s: %w (see %s)", argv[0], err, logPath)
	}
	return id, nil
}
