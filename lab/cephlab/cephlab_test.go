package cephlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/logging"
)

func TestOptionsRefused(t *testing.T) {
	tests := map[string]struct {
		opts Options
		want string
	}{
		"empty dir":     {Options{}, "absolute path"},
		"relative dir":  {Options{Dir: "lab/c1"}, "absolute path"},
		"space in dir":  {Options{Dir: "/tmp/a b"}, "must not contain"},
		"tiny OSD file": {Options{Dir: "/tmp/x", OSDSize: 1 << 20}, "at least 2 GiB"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%+v) = %v, want an error containing %q", tc.opts, err, tc.want)
			}
		})
	}
}

func TestRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "precious.txt")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{Dir: dir, Log: logging.Discard()})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Start into a foreign directory = %v, want a refusal", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("the foreign file is gone: %v", err)
	}
}

func TestStatusOfNothing(t *testing.T) {
	c, err := New(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	st := c.Status(context.Background())
	if st.Bootstrapped || st.Health != "no cluster" {
		t.Fatalf("status of an empty dir = %+v", st)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatalf("stop of a cluster never started: %v", err)
	}
}

// TestStartStopRestartKeepsData bootstraps a real cluster (the only one
// this package starts), writes an image, stops, restarts and reads it back.
func TestStartStopRestartKeepsData(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range []string{"ceph-mon", "ceph-osd", "ceph-mgr"} {
		testenv.RequireCommand(t, c, c)
	}
	testenv.RequireCommand(t, "rbd", "ceph-common")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	testenv.RequireCommand(t, "ip", "iproute2")
	// the one cluster this package starts runs in its own network namespace,
	// which proves NetNS; host clusters on free ports are what every other
	// real-Ceph test (internal/cephtest, make test) runs on
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	ns := fmt.Sprintf("bmilab-cephtest-%x", rb)
	for _, args := range [][]string{{"netns", "add", ns}, {"netns", "exec", ns, "ip", "link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	dir, err := os.MkdirTemp("", "cephlab-test-")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Dir: dir, OSDSize: 4 << 30, NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Purge(context.Background()); err != nil {
			t.Errorf("purge: %v", err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("purge left %s behind (%v)", dir, err)
		}
	})
	t0 := time.Now()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("bootstrap to HEALTH_OK: %v", time.Since(t0).Round(100*time.Millisecond))
	assertRunning(t, c, true)
	if host, err := c.MonHost(); err != nil || host != "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]" {
		t.Errorf("MonHost = %q, %v; want the default ports on the namespace's loopback", host, err)
	}
	// from the host's network the namespaced mon is out of reach
	if out, err := exec.Command("ceph", "--conf", c.ConfPath(), "--connect-timeout", "3", "health").CombinedOutput(); err == nil {
		t.Errorf("ceph health from outside the namespace succeeded: %s", out)
	}

	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)
	src := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rbd(t, c, "import", src, "keepme")

	// idempotent start: nothing restarted
	pids := pidsOf(c)
	if err := c.Start(ctx); err != nil {
		t.Fatalf("second start: %v", err)
	}
	if got := pidsOf(c); got != pids {
		t.Fatalf("second start restarted daemons: %s → %s", pids, got)
	}

	t0 = time.Now()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("stop: %v", time.Since(t0).Round(100*time.Millisecond))
	assertRunning(t, c, false)
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second stop: %v", err)
	}

	t0 = time.Now()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Logf("restart to HEALTH_OK: %v", time.Since(t0).Round(100*time.Millisecond))
	assertRunning(t, c, true)
	out := filepath.Join(t.TempDir(), "back")
	rbd(t, c, "export", "keepme", out)
	back, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, data) {
		t.Fatal("image data changed across stop/start")
	}
	rbd(t, c, "rm", "--no-progress", "keepme")
}

func rbd(t *testing.T, c *Cluster, args ...string) {
	t.Helper()
	argv := append([]string{"ip", "netns", "exec", c.NetNS(), "rbd", "--conf", c.ConfPath(), "--pool", c.Pool()}, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rbd %v: %v: %s", args, err, out)
	}
}

func pidsOf(c *Cluster) string {
	var b strings.Builder
	for _, d := range c.Status(context.Background()).Daemons {
		fmt.Fprintf(&b, "%s=%d ", d.Name, d.PID)
	}
	return b.String()
}

func assertRunning(t *testing.T, c *Cluster, want bool) {
	t.Helper()
	st := c.Status(context.Background())
	for _, d := range st.Daemons {
		if d.Running != want {
			t.Errorf("%s running = %v, want %v (status %+v)", d.Name, d.Running, want, st)
		}
	}
	if want && !strings.HasPrefix(st.Health, "HEALTH_OK") {
		t.Errorf("health = %q, want HEALTH_OK", st.Health)
	}
	if !st.Bootstrapped {
		t.Errorf("status says not bootstrapped")
	}
}

// TestUnfinishedBootstrapIsRedone: a directory of ours whose bootstrap
// stopped before the OSD was made counts as not bootstrapped, and is wiped
// before the next bootstrap; a finished one is kept.
func TestUnfinishedBootstrapIsRedone(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	write := func(rel, body string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeConf(c.ConfPath(), confData{Dir: dir, FSID: "f", IP: "127.0.0.1", MonHost: monHost("127.0.0.1", 1, 2), OSDSize: DefaultOSDSize}); err != nil {
		t.Fatal(err)
	}
	write("mon/ceph-a/store.db/CURRENT", "x")
	if c.bootstrapped() {
		t.Fatal("a cluster without a finished OSD counts as bootstrapped")
	}
	write("osd/ceph-0/ready", "ready")
	if !c.bootstrapped() {
		t.Fatal("a finished cluster does not count as bootstrapped")
	}
	if err := os.Remove(filepath.Join(dir, "osd/ceph-0/ready")); err != nil {
		t.Fatal(err)
	}
	if err := c.checkEmpty(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("unfinished bootstrap not wiped: %v", ents)
	}
	if host, err := c.MonHost(); err == nil {
		t.Fatalf("MonHost after the wipe = %q", host)
	}
}

// TestStartFailureQuotesTheLog: a mon that cannot bind its port makes
// Start fail fast with the last lines of the mon's log in the error.
func TestStartFailureQuotesTheLog(t *testing.T) {
	for _, c := range []string{"ceph-mon", "ceph-authtool", "monmaptool"} {
		testenv.RequireCommand(t, c, "ceph-mon")
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	c, err := New(Options{Dir: dir, MonPort: busy, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop(context.Background()) }()
	t0 := time.Now()
	err = c.Start(context.Background())
	if err == nil {
		t.Fatal("Start succeeded with the mon port taken")
	}
	t.Logf("after %v: %v", time.Since(t0).Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), "last lines of "+filepath.Join(dir, "log", "mon.a")) {
		t.Fatalf("error does not quote the mon's log: %v", err)
	}
	if st := c.Status(context.Background()); st.Daemons[0].Running {
		t.Fatalf("a mon is running: %+v", st)
	}
}
