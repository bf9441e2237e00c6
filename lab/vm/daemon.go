// Package vm runs the lab's machines: a libvirtd (with its virtlogd)
// started by hand inside the lab's network namespace, QEMU/TCG domains
// driven through github.com/digitalocean/go-libvirt, their serial consoles
// captured to files, and the power and switch drivers that hil-mock uses to
// act on them.
//
// Each lab's libvirtd is private: it runs in its own mount namespace where
// /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and
// /var/cache/libvirt are bind mounts of directories under the lab's run
// directory. So two labs (or a lab and the machine's own libvirt) never
// share a socket, a domain name or a configuration, nothing is written to
// the host's libvirt state, and no systemd, D-Bus or polkit is needed.
// Because libvirtd runs in the lab's network namespace, the taps it hands
// to QEMU are the lab's and every QEMU it starts is inside the lab too.
package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"

	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/service/fault"
)

// Daemon is a lab's libvirtd and virtlogd.
type Daemon struct {
	ns  string
	dir string
	log *slog.Logger
	// Libvirtd and Virtlogd are the two processes.
	Libvirtd proc.ID `json:"libvirtd"`
	Virtlogd proc.ID `json:"virtlogd"`
}

// privateDirs are the libvirt directories each lab gets its own copy of.
var privateDirs = []struct{ sub, mountpoint string }{
	{"etc", "/etc/libvirt"},
	{"run", "/run/libvirt"},
	{"lib", "/var/lib/libvirt"},
	{"log", "/var/log/libvirt"},
	{"cache", "/var/cache/libvirt"},
}

// qemuConf runs QEMU as root without a security driver, so that disks and
// serial files under the lab directory need no ownership changes.
const qemuConf = `user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
`

// NewDaemon returns the handle of the libvirtd of the lab whose namespace
// is ns and whose libvirt directories live under dir. It starts nothing.
func NewDaemon(ns, dir string, log *slog.Logger) *Daemon {
	return &Daemon{ns: ns, dir: dir, log: log}
}

// Socket is libvirtd's UNIX socket, as seen from the host.
func (d *Daemon) Socket() string { return filepath.Join(d.dir, "run", "libvirt-sock") }

// LogPath is libvirtd's log file.
func (d *Daemon) LogPath() string { return filepath.Join(d.dir, "log", "libvirtd.log") }

func (d *Daemon) stateFile() string { return filepath.Join(d.dir, "daemon.json") }

// load reads the recorded process IDs, if any.
func (d *Daemon) load() {
	b, err := os.ReadFile(d.stateFile())
	if err == nil {
		_ = json.Unmarshal(b, d)
	}
}

// Running reports whether the recorded libvirtd and virtlogd both run.
func (d *Daemon) Running() bool {
	d.load()
	return d.Libvirtd.Alive() && d.Virtlogd.Alive()
}

// Start starts virtlogd and libvirtd in the namespace unless both already
// run, and waits until libvirtd answers on its socket. It returns how long
// that took.
func (d *Daemon) Start(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if d.Running() {
		return 0, nil
	}
	if err := d.Stop(ctx); err != nil { // a half-started pair
		return 0, err
	}
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, p := range privateDirs {
		src := filepath.Join(d.dir, p.sub)
		if err := os.MkdirAll(src, 0o755); err != nil {
			return 0, fmt.Errorf("libvirt directories: %w", err)
		}
		fmt.Fprintf(&script, "mkdir -p %s\nmount --bind %s %s\n", p.mountpoint, shq(src), p.mountpoint)
	}
	if err := os.MkdirAll(filepath.Join(d.dir, "etc", "qemu"), 0o755); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(d.dir, "etc", "qemu.conf"), []byte(qemuConf), 0o644); err != nil {
		return 0, err
	}
	logOut := fmt.Sprintf("log_outputs=\"3:file:%s\"\n", d.LogPath())
	if err := os.WriteFile(filepath.Join(d.dir, "etc", "libvirtd.conf"), []byte(logOut), 0o644); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(d.dir, "etc", "virtlogd.conf"),
		[]byte(strings.Replace(logOut, "libvirtd.log", "virtlogd.log", 1)), 0o644); err != nil {
		return 0, err
	}
	vpid := filepath.Join(d.dir, "virtlogd.pid")
	_ = os.Remove(vpid)
	// virtlogd daemonizes and writes its pid file; libvirtd replaces the
	// shell, so the started pid is libvirtd's.
	fmt.Fprintf(&script, "virtlogd -d -p %s\nexec libvirtd -p %s\n", shq(vpid), shq(filepath.Join(d.dir, "libvirtd.pid")))
	argv := []string{"ip", "netns", "exec", d.ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script.String()}
	id, err := proc.StartDaemon(argv, nil, filepath.Join(d.dir, "daemon.out"))
	if err != nil {
		return 0, fmt.Errorf("start libvirtd: %w", err)
	}
	d.Libvirtd = id
	// Wait for the socket, then read virtlogd's pid.
	var lastErr error
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !id.Alive() {
			out, _ := os.ReadFile(filepath.Join(d.dir, "daemon.out"))
			return 0, fmt.Errorf("libvirtd exited at start: %s (see %s): %w", lastLine(string(out)), d.LogPath(), fault.ErrUnavailable)
		}
		var l *libvirt.Libvirt
		if l, lastErr = dial(d.Socket()); lastErr == nil {
			_ = l.Disconnect()
			break
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	if lastErr != nil {
		_ = d.Stop(ctx)
		return 0, fmt.Errorf("libvirtd did not answer on %s within 60 s: %v: %w", d.Socket(), lastErr, fault.ErrUnavailable)
	}
	if b, err := os.ReadFile(vpid); err == nil {
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil {
			d.Virtlogd, _ = proc.Self(pid)
		}
	}
	if !d.Virtlogd.Alive() {
		_ = d.Stop(ctx)
		return 0, fmt.Errorf("virtlogd is not running (see %s): %w", filepath.Join(d.dir, "log", "virtlogd.log"), fault.ErrUnavailable)
	}
	b, _ := json.Marshal(d)
	if err := os.WriteFile(d.stateFile(), b, 0o644); err != nil {
		return 0, err
	}
	took := time.Since(start)
	d.log.Info("libvirtd started", "namespace", d.ns, "libvirtd_pid", d.Libvirtd.Pid, "virtlogd_pid", d.Virtlogd.Pid, "took", took.Round(time.Millisecond))
	return took, nil
}

// Stop destroys every running domain (QEMU outlives a killed libvirtd),
// then stops libvirtd and virtlogd by their recorded IDs. Stopping a
// daemon that does not run is not an error.
func (d *Daemon) Stop(ctx context.Context) error {
	d.load()
	var errs []error
	if d.Libvirtd.Alive() {
		if l, err := dial(d.Socket()); err == nil {
			doms, _, err := l.ConnectListAllDomains(1, libvirt.ConnectListDomainsActive)
			if err == nil {
				for _, dom := range doms {
					if err := l.DomainDestroy(dom); err != nil && !libvirt.IsNotFound(err) {
						errs = append(errs, fmt.Errorf("destroy domain %s: %w", dom.Name, err))
					}
				}
			}
			_ = l.Disconnect()
		}
	}
	for _, id := range []proc.ID{d.Libvirtd, d.Virtlogd} {
		if err := id.Stop(ctx, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(d.stateFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	d.Libvirtd, d.Virtlogd = proc.ID{}, proc.ID{}
	return errors.Join(errs...)
}

// dial connects to libvirtd's system driver on socket.
func dial(socket string) (*libvirt.Libvirt, error) {
	l := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(socket), dialers.WithLocalTimeout(5*time.Second)))
	if err := l.ConnectToURI(libvirt.QEMUSystem); err != nil {
		return nil, err
	}
	return l, nil
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
