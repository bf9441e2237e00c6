package cephlab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// commandTimeout bounds one Ceph CLI call.
const commandTimeout = 60 * time.Second

// command builds argv, prefixed by `ip netns exec` when the cluster runs in
// a namespace.
func (c *Cluster) command(ctx context.Context, argv ...string) *exec.Cmd {
	if c.opts.NetNS != "" {
		argv = append([]string{"ip", "netns", "exec", c.opts.NetNS}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs argv and returns its stdout. stderr goes to log/<logName>.out
// when logName is set, and into the error otherwise.
func (c *Cluster) run(ctx context.Context, logName string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := c.command(ctx, argv...)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if logName != "" {
		f, err := os.OpenFile(filepath.Join(c.opts.Dir, "log", logName+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return "", err
		}
		defer f.Close()
		cmd.Stderr = f
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return "", fmt.Errorf("ceph lab %s: %s: %w: %s", c.opts.Dir, strings.Join(argv[:min(len(argv), 4)], " "), err, lastLines(msg, 10))
	}
	return out.String(), nil
}

// ceph runs the ceph CLI against the cluster.
func (c *Cluster) ceph(ctx context.Context, args ...string) (string, error) {
	return c.run(ctx, "", append([]string{"ceph", "--conf", c.ConfPath(), "--connect-timeout", "10"}, args...)...)
}

// startDaemon starts ceph-<typ> -i id; it daemonizes and writes its pid
// file. Its stdout and stderr go to a file, never to a pipe of ours: the
// daemon outlives the command and would keep a pipe open.
func (c *Cluster) startDaemon(ctx context.Context, typ, id string) error {
	name := typ + "." + id
	f, err := os.OpenFile(filepath.Join(c.opts.Dir, "log", name+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("ceph lab %s: %w", c.opts.Dir, err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := c.command(ctx, "ceph-"+typ, "--conf", c.ConfPath(), "-i", id)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		return c.withLog(fmt.Errorf("ceph lab %s: start %s: %w", c.opts.Dir, name, err), typ, id)
	}
	// the pid file appears right after the fork
	for range 50 {
		if _, ok := c.pid(typ, id); ok {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c.withLog(fmt.Errorf("ceph lab %s: %s did not stay up", c.opts.Dir, name), typ, id)
}

func (c *Cluster) pidFile(typ, id string) string {
	return filepath.Join(c.opts.Dir, "run", typ+"."+id+".pid")
}

// pid returns the pid of a running daemon of this cluster. A pid file whose
// process is gone, is a zombie, or is not that daemon counts as not running.
func (c *Cluster) pid(typ, id string) (int, bool) {
	b, err := os.ReadFile(c.pidFile(typ, id))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, isDaemon(pid, typ, c.ConfPath())
}

// isDaemon reports whether pid is a live ceph-<typ> started with conf.
func isDaemon(pid int, typ, conf string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	return len(args) > 0 && filepath.Base(args[0]) == "ceph-"+typ && strings.Contains(string(cmdline), conf)
}

// withLog appends the last lines of the daemon's log to err.
func (c *Cluster) withLog(err error, typ, id string) error {
	name := typ + "." + id
	var parts []string
	for _, f := range []string{name + ".log", name + ".out"} {
		if t := tailFile(filepath.Join(c.opts.Dir, "log", f), 15); t != "" {
			parts = append(parts, fmt.Sprintf("last lines of %s:\n%s", filepath.Join(c.opts.Dir, "log", f), t))
		}
	}
	if len(parts) == 0 {
		return err
	}
	return fmt.Errorf("%w\n%s", err, strings.Join(parts, "\n"))
}

// tailFile returns the last n lines of a file (reading at most 64 KiB).
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-64<<10, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return ""
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHealthy polls `ceph health` until HEALTH_OK. A daemon that dies
// meanwhile ends the wait at once with its log.
func (c *Cluster) waitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	last := ""
	for {
		for _, d := range daemons {
			if _, ok := c.pid(d.typ, d.id); !ok {
				return c.withLog(fmt.Errorf("ceph lab %s: %s.%s is not running", c.opts.Dir, d.typ, d.id), d.typ, d.id)
			}
		}
		out, err := c.ceph(ctx, "health")
		if err == nil {
			last = strings.TrimSpace(out)
			if strings.HasPrefix(last, "HEALTH_OK") {
				// right after a restart the mon may still believe the OSD
				// of before the stop is up: HEALTH_OK counts only once the
				// running OSD process is the one the osdmap has up
				ok, why := c.osdUp(ctx)
				if ok {
					return nil
				}
				last = why
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			err := fmt.Errorf("ceph lab %s: not HEALTH_OK after %v (last: %s)", c.opts.Dir, c.opts.Timeout, lastLines(last, 5))
			if errors.Is(ctx.Err(), context.Canceled) {
				err = fmt.Errorf("ceph lab %s: wait for HEALTH_OK: %w", c.opts.Dir, ctx.Err())
			}
			return c.withLog(c.withLog(err, "mon", "a"), "osd", "0")
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// osdUp reports whether the osdmap has osd.0 up with the address nonce
// of the running ceph-osd (Ceph uses the pid as nonce).
func (c *Cluster) osdUp(ctx context.Context) (bool, string) {
	pid, ok := c.pid("osd", "0")
	if !ok {
		return false, "osd.0 not running"
	}
	out, err := c.ceph(ctx, "osd", "dump", "--format", "json")
	if err != nil {
		return false, err.Error()
	}
	var dump struct {
		OSDs []struct {
			OSD         int `json:"osd"`
			Up          int `json:"up"`
			PublicAddrs struct {
				AddrVec []struct {
					Nonce int `json:"nonce"`
				} `json:"addrvec"`
			} `json:"public_addrs"`
		} `json:"osds"`
	}
	if err := json.Unmarshal([]byte(out), &dump); err != nil {
		return false, "osd dump: " + err.Error()
	}
	for _, o := range dump.OSDs {
		if o.OSD == 0 && o.Up == 1 {
			for _, a := range o.PublicAddrs.AddrVec {
				if a.Nonce == pid {
					return true, ""
				}
			}
			return false, fmt.Sprintf("osdmap has an earlier osd.0 up, not pid %d", pid)
		}
	}
	return false, "osd.0 is not up in the osdmap"
}

// Stop stops the cluster's daemons (those named by its pid files), OSD
// first, and waits for them to exit: SIGTERM, then SIGKILL after 30 s.
// Stopping a stopped cluster does nothing. Data is kept.
func (c *Cluster) Stop(ctx context.Context) error {
	var pids []int
	for i := len(daemons) - 1; i >= 0; i-- {
		d := daemons[i]
		pid, ok := c.pid(d.typ, d.id)
		if !ok {
			_ = os.Remove(c.pidFile(d.typ, d.id))
			continue
		}
		c.log.Info("stopping ceph daemon", "daemon", d.typ+"."+d.id, "pid", pid)
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("ceph lab %s: stop %s.%s (pid %d): %w", c.opts.Dir, d.typ, d.id, pid, err)
		}
		pids = append(pids, pid)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				c.log.Warn("ceph daemon did not exit; killing it", "pid", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
				time.Sleep(200 * time.Millisecond)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, d := range daemons {
		_ = os.Remove(c.pidFile(d.typ, d.id))
	}
	return nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X'
}

// Purge stops the cluster and removes its directory.
func (c *Cluster) Purge(ctx context.Context) error {
	if err := c.Stop(ctx); err != nil {
		return err
	}
	if err := os.RemoveAll(c.opts.Dir); err != nil {
		return fmt.Errorf("ceph lab %s: purge: %w", c.opts.Dir, err)
	}
	return nil
}

// DaemonStatus describes one daemon of the cluster.
type DaemonStatus struct {
	Name    string // "mon.a", "mgr.x", "osd.0"
	PID     int    // 0 when not running
	Running bool
	RSSKiB  int64 // resident memory, when running
}

// Status is the state of the cluster.
type Status struct {
	Dir          string
	Bootstrapped bool
	Daemons      []DaemonStatus
	// Health is the first line of `ceph health`, or why it is unknown.
	Health string
}

// Status reports the daemons and, when the mon runs, the cluster's health.
func (c *Cluster) Status(ctx context.Context) Status {
	st := Status{Dir: c.opts.Dir, Bootstrapped: c.bootstrapped()}
	monUp := false
	for _, d := range daemons {
		ds := DaemonStatus{Name: d.typ + "." + d.id}
		if pid, ok := c.pid(d.typ, d.id); ok {
			ds.PID, ds.Running, ds.RSSKiB = pid, true, rss(pid)
			monUp = monUp || d.typ == "mon"
		}
		st.Daemons = append(st.Daemons, ds)
	}
	switch {
	case !st.Bootstrapped:
		st.Health = "no cluster"
	case !monUp:
		st.Health = "mon not running"
	default:
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		out, err := c.ceph(ctx, "health")
		if err != nil {
			st.Health = "unknown: " + err.Error()
		} else {
			st.Health = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
		}
	}
	return st
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// RestartOSD stops osd.0 (SIGTERM, as a service manager would), starts it
// again and waits until the osdmap has the new one up: clients' I/O stalls
// meanwhile and resumes on their own (the lab's fault for "an OSD
// restarted under live nodes").
func (c *Cluster) RestartOSD(ctx context.Context) error {
	pid, ok := c.pid("osd", "0")
	if !ok {
		return fmt.Errorf("ceph lab %s: osd.0 is not running", c.opts.Dir)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("ceph lab %s: stop osd.0 (pid %d): %w", c.opts.Dir, pid, err)
	}
	for deadline := time.Now().Add(30 * time.Second); alive(pid); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = os.Remove(c.pidFile("osd", "0"))
	if err := c.startDaemon(ctx, "osd", "0"); err != nil {
		return err
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		up, why := c.osdUp(ctx)
		if up {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return c.withLog(fmt.Errorf("ceph lab %s: osd.0 not up after its restart: %s", c.opts.Dir, why), "osd", "0")
		}
	}
}
