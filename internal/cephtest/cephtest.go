// Package cephtest gives tests a real Ceph pool to work in: the cluster
// `make test` started (named by BMI_TEST_CEPH_CONF and BMI_TEST_CEPH_POOL),
// or else one private single-node cluster per test binary, started on the
// first Pool call and purged when the tests end. Every test gets its own
// image-name prefix, so packages that share one cluster never collide, and
// a leftover check fails the test when anything with its prefix (image,
// snapshot, lock) is left behind.
//
// A package that uses it calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(cephtest.Main(m)) }
package cephtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab/cephlab"
)

// Environment variables naming a running cluster to use instead of a
// private one.
const (
	EnvConf = "BMI_TEST_CEPH_CONF"
	EnvPool = "BMI_TEST_CEPH_POOL"
)

// commands the private cluster needs, and their Debian packages.
var commands = [][2]string{
	{"ceph-mon", "ceph-mon"}, {"ceph-mgr", "ceph-mgr"}, {"ceph-osd", "ceph-osd"},
	{"ceph-authtool", "ceph-common"}, {"monmaptool", "ceph-common"}, {"ceph", "ceph-common"}, {"rbd", "ceph-common"},
}

var state struct {
	mu       sync.Mutex
	inMain   bool
	started  bool
	cluster  *cephlab.Cluster
	conf     string
	pool     string
	tmp      string
	startErr error
}

// Main runs the tests and then stops and purges the private cluster, if
// one was started. With a private cluster it also fails the run when the
// pool is not empty at the end (the suite-wide leftover check).
func Main(m *testing.M) int {
	state.mu.Lock()
	state.inMain = true
	state.mu.Unlock()
	code := m.Run()
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.cluster == nil {
		return code
	}
	if left, err := listImages(state.conf, state.pool, ""); err != nil {
		fmt.Fprintf(os.Stderr, "cephtest: leftover check: %v\n", err)
		code = max(code, 1)
	} else if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "cephtest: the tests left images in pool %s: %s\n", state.pool, strings.Join(left, ", "))
		code = max(code, 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := state.cluster.Purge(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "cephtest: purge the test cluster: %v\n", err)
		code = max(code, 1)
	}
	_ = os.RemoveAll(state.tmp)
	return code
}

// Stoppable starts a cluster for tb alone, one a test may stop and restart
// (an outage test: the shared cluster must stay up), with OSDs of 4 GiB;
// it is purged when tb ends. It stops tb the way Cluster does when Ceph
// is missing.
func Stoppable(tb testing.TB) *cephlab.Cluster {
	tb.Helper()
	Cluster(tb) // skip (or fail under CI) the same way when Ceph is missing
	dir, err := os.MkdirTemp("", "bmi-ceph-stoppable-")
	if err != nil {
		tb.Fatal(err)
	}
	c, err := cephlab.New(cephlab.Options{Dir: dir, OSDSize: 4 << 30})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Purge(context.Background()); err != nil {
			tb.Errorf("purge the stoppable cluster: %v", err)
		}
	})
	if err := c.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return c
}

// Cluster returns the conf and pool of the test cluster, starting the
// private one on first use. It stops tb (testenv.Missing) when the Ceph
// binaries are not installed.
func Cluster(tb testing.TB) (conf, pool string) {
	tb.Helper()
	testenv.SkipShort(tb, "a Ceph cluster")
	if conf := os.Getenv(EnvConf); conf != "" {
		pool := os.Getenv(EnvPool)
		if pool == "" {
			pool = cephlab.PoolName
		}
		if abs, err := filepath.Abs(conf); err == nil {
			conf = abs
		}
		return conf, pool
	}
	for _, c := range commands {
		testenv.RequireCommand(tb, c[0], c[1])
	}
	state.mu.Lock()
	defer state.mu.Unlock()
	if !state.inMain {
		tb.Fatalf("cephtest: call cephtest.Main from TestMain (or set %s)", EnvConf)
	}
	if !state.started {
		state.started = true
		state.startErr = startPrivate()
	}
	if state.startErr != nil {
		tb.Fatalf("cephtest: start a private ceph cluster: %v", state.startErr)
	}
	return state.conf, state.pool
}

func startPrivate() error {
	reapOrphans()
	tmp, err := os.MkdirTemp("", "bmi-cephtest-")
	if err != nil {
		return err
	}
	// the owner file lets a later test binary purge this cluster if this
	// one dies without running Main's purge (test timeout, kill)
	if err := os.WriteFile(filepath.Join(tmp, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := cephlab.Start(ctx, cephlab.Options{Dir: filepath.Join(tmp, "cluster")})
	if err != nil {
		if c2, err2 := cephlab.New(cephlab.Options{Dir: filepath.Join(tmp, "cluster")}); err2 == nil {
			_ = c2.Purge(context.Background())
		}
		_ = os.RemoveAll(tmp)
		return err
	}
	state.cluster, state.conf, state.pool, state.tmp = c, c.ConfPath(), c.Pool(), tmp
	return nil
}

// reapOrphans purges the private clusters of test binaries that died
// without purging them: directories /tmp/bmi-cephtest-* whose owner.pid
// names a process that no longer exists.
func reapOrphans() {
	owners, _ := filepath.Glob(filepath.Join(os.TempDir(), "bmi-cephtest-*", "owner.pid"))
	for _, f := range owners {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // owner alive
		}
		dir := filepath.Dir(f)
		if c, err := cephlab.New(cephlab.Options{Dir: filepath.Join(dir, "cluster")}); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := c.Purge(ctx); err == nil {
				_ = os.RemoveAll(dir)
				fmt.Fprintf(os.Stderr, "cephtest: purged the cluster of dead test process %d (%s)\n", pid, dir)
			}
			cancel()
		}
	}
}

// Pool returns the test cluster's conf and pool and a prefix unique to
// this test for every image it creates. When the test ends, anything
// named with the prefix that is still in the pool fails the test and is
// then removed, so that one test's leftovers do not break the next.
func Pool(tb testing.TB) (conf, pool, prefix string) {
	tb.Helper()
	conf, pool = Cluster(tb)
	prefix = Prefix(tb)
	tb.Cleanup(func() {
		report, err := Leftovers(conf, pool, prefix)
		if err != nil {
			tb.Errorf("cephtest: leftover check for %q: %v", prefix, err)
			return
		}
		if report != "" {
			tb.Errorf("cephtest: test left this behind in pool %s:\n%s", pool, report)
			if err := forceRemove(conf, pool, prefix); err != nil {
				tb.Errorf("cephtest: remove the leftovers: %v", err)
			}
		}
	})
	return conf, pool, prefix
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9]+`)

// Prefix returns a fresh image-name prefix for tb: "t<8 hex>-<test name>-",
// at most 32 characters, valid as the start of an RBD name.
func Prefix(tb testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(unsafeChars.ReplaceAllString(tb.Name(), ""))
	if len(name) > 20 {
		name = name[len(name)-20:]
	}
	return "t" + hex.EncodeToString(b[:]) + "-" + name + "-"
}

// RBD runs the rbd command against the test cluster and returns stdout.
func RBD(conf, pool string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rbd", append([]string{"--conf", conf, "--pool", pool}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("rbd %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func listImages(conf, pool, prefix string) ([]string, error) {
	out, err := RBD(conf, pool, "ls")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range strings.Fields(out) {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	return names, nil
}

// Leftovers describes every image named with prefix that is in the pool,
// with its snapshots, locks and watchers; "" when there is none.
func Leftovers(conf, pool, prefix string) (string, error) {
	names, err := listImages(conf, pool, prefix)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "image %s\n", n)
		for _, what := range [][]string{{"snap", "ls", "--all", n}, {"lock", "ls", n}, {"status", n}} {
			out, err := RBD(conf, pool, what...)
			if err != nil {
				out = err.Error()
			}
			if out = strings.TrimSpace(out); out != "" && out != "Watchers: none" {
				fmt.Fprintf(&b, "  rbd %s %s:\n    %s\n", what[0], what[1], strings.ReplaceAll(out, "\n", "\n    "))
			}
		}
	}
	return b.String(), nil
}

// forceRemove removes every image named with prefix: its advisory locks
// (a locked image cannot be removed), snapshots, clones first.
func forceRemove(conf, pool, prefix string) error {
	var last error
	for range 5 {
		names, err := listImages(conf, pool, prefix)
		if err != nil || len(names) == 0 {
			return err
		}
		last = nil
		for _, n := range names {
			if out, err := RBD(conf, pool, "lock", "ls", "--format", "json", n); err == nil {
				var locks []struct{ ID, Locker string }
				if json.Unmarshal([]byte(out), &locks) == nil {
					for _, l := range locks {
						_, _ = RBD(conf, pool, "lock", "rm", n, l.ID, l.Locker)
					}
				}
			}
			snaps, _ := RBD(conf, pool, "snap", "ls", n)
			for _, l := range strings.Split(snaps, "\n") {
				if f := strings.Fields(l); len(f) >= 2 && f[0] != "SNAPID" {
					_, _ = RBD(conf, pool, "snap", "unprotect", n+"@"+f[1])
				}
			}
			_, _ = RBD(conf, pool, "snap", "purge", n)
			if _, err := RBD(conf, pool, "rm", n); err != nil {
				last = err
			}
		}
	}
	return last
}
