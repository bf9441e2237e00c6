//go:build ceph_preview

package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/sitetest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/ceph"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/logging"
)

// The run's report: every benchmark adds its section; TestMain writes it.
var (
	report  = &Report{Started: time.Now()}
	runDir  string
	isQuick = os.Getenv("BMI_BENCH_QUICK") == "1"
)

func TestMain(m *testing.M) {
	report.Quick = isQuick
	report.Machine = Probe()
	runDir = os.Getenv("BMI_BENCH_DIR")
	if runDir == "" {
		runDir = filepath.Join(testenv.RepoRoot(), "test-results", "bench", time.Now().UTC().Format("20060102T150405Z"))
	}
	code := cephtest.Main(m)
	if len(report.Sections) > 0 {
		report.Finished = time.Now()
		addISCSI(report)
		if err := report.Write(runDir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = max(code, 1)
		} else {
			fmt.Printf("bench: %s/summary.md\n", runDir)
		}
	}
	os.Exit(code)
}

// addISCSI folds in service/iscsi's benchmark (BenchmarkISCSI: our target
// vs tgtd's rbd backing store vs direct librbd) when `make bench` ran it
// in this run: the newest results.md written after BMI_BENCH_SINCE (unix
// seconds) and before this process started (make bench runs it just
// before), so that a BenchmarkISCSI someone else runs meanwhile is not
// taken for this run's.
func addISCSI(r *Report) {
	since, err := strconv.ParseInt(os.Getenv("BMI_BENCH_SINCE"), 10, 64)
	if err != nil {
		return
	}
	dirs, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "test-results", "bench", "iscsi-*", "results.md"))
	var newest string
	var at time.Time
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.ModTime().Unix() >= since && fi.ModTime().Before(r.Started) && fi.ModTime().After(at) {
			newest, at = d, fi.ModTime()
		}
	}
	s := &Section{ID: "5-iscsi", Title: "5. iSCSI throughput",
		Compares: "service/iscsi's BenchmarkISCSI, run by make bench just before: our target vs tgtd with its rbd backing store vs direct librbd on one fully written 1 GiB RBD image."}
	rc, err := os.ReadFile(filepath.Join(runDir, "iscsi.rc"))
	switch {
	case err != nil:
		s.Note("not run (make bench QUICK=1 leaves it out: it takes about 4 minutes)")
		r.Sections = append(r.Sections, s)
		r.SortSections()
		return
	case strings.TrimSpace(string(rc)) != "0":
		s.Note("service/iscsi's benchmark FAILED (exit status %s, see go-bench.txt); figures below are what it wrote", strings.TrimSpace(string(rc)))
	}
	if newest == "" {
		s.Note("service/iscsi's benchmark did not write results in this run (see go-bench.txt)")
	} else {
		b, _ := os.ReadFile(newest)
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			lines = append(lines, strings.TrimPrefix(l, "# ")) // its title lines, as text
		}
		s.Embedded = strings.Join(lines, "\n")
		s.Note("from %s", strings.TrimPrefix(newest, testenv.RepoRoot()+"/"))
	}
	// its load figures are in its own table; keep the section's ordering by id
	r.Sections = append(r.Sections, s)
	r.SortSections()
}

// site is a full bmid (daemon.New + Run: real core on SQLite, real Ceph,
// real iSCSI target on loopback) with an in-process hil-mock seeded from
// configs/hil-mock.example.yaml, and a librbd store for the baselines.
type site struct {
	cfg   config.Config
	svc   *core.Service
	store *ceph.Store
	pfx   string // every image of the run starts with it (cephtest's leftover check)
	api   string // bmid's API base URL
	hil   string // the HIL's (hil-mock's) base URL
}

var (
	alice = core.Principal{User: "alice", Password: "alice-secret"}
	admin = core.Principal{User: "hiladmin", Password: "admin-secret"}
)

func startSite(b *testing.B) *site {
	b.Helper()
	conf, pool, pfx := cephtest.Pool(b)
	ctx := context.Background()
	bmi := sitetest.Start(b, sitetest.Options{UID: strings.TrimSuffix(pfx, "-"), OpTimeout: 60 * time.Second,
		ReadyWait: 120 * time.Second, TFTPRoot: "/usr/lib/ipxe"})
	cfg, d := bmi.Config, bmi.Daemon
	st, err := ceph.Dial(ctx, ceph.Config{Conf: conf, Pool: pool, OpTimeout: 60 * time.Second}, logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	s := &site{cfg: cfg, svc: d.Service(), store: st, pfx: pfx, api: bmi.URL, hil: bmi.HILURL}
	if _, err := s.svc.CreateProject(ctx, admin, "tenant-a"); err != nil {
		b.Fatal(err)
	}
	return s
}

// rbd runs the rbd CLI on the test pool.
func (s *site) rbd(b *testing.B, args ...string) {
	b.Helper()
	if out, err := cephtest.RBD(s.cfg.Ceph.Conf, s.cfg.Ceph.Pool, args...); err != nil {
		b.Fatalf("rbd %v: %v\n%s", args, err, out)
	}
}

// source makes a sparse RBD image of gib GiB with written MiB of data at
// its start, imports it into BMI as image name, removes the source and
// returns the import's duration. The image is removed at cleanup.
func (s *site) source(b *testing.B, name string, gib, written int) time.Duration {
	b.Helper()
	src := s.pfx + "src-" + name
	s.rbd(b, "create", "--size", fmt.Sprintf("%dG", gib), src)
	if written > 0 {
		s.rbd(b, "bench", "--io-type", "write", "--io-size", "4M", "--io-threads", "8", "--io-pattern", "seq",
			"--io-total", fmt.Sprintf("%dM", written), src)
	}
	t0 := time.Now()
	_, err := s.svc.ImportImage(context.Background(), admin, "tenant-a", src, core.ImportOptions{Name: name})
	d := time.Since(t0)
	s.rbd(b, "rm", "--no-progress", src)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.removeImage(b, name) })
	return d
}

func (s *site) removeImage(b *testing.B, name string) {
	if err := s.svc.RemoveImage(context.Background(), alice, "tenant-a", name); err != nil {
		b.Errorf("remove image %s: %v", name, err)
	}
}

// rmCLICopy removes an image the rbd CLI made, with any snapshots it copied.
func (s *site) rmCLICopy(b *testing.B, name string) {
	b.Helper()
	_, _ = cephtest.RBD(s.cfg.Ceph.Conf, s.cfg.Ceph.Pool, "snap", "unprotect", name+"@"+s.cfg.Ceph.Snapshot)
	s.rbd(b, "snap", "purge", "--no-progress", name)
	s.rbd(b, "rm", "--no-progress", name)
}

// section starts a section and its load watcher; done files it.
func section(id, title, compares string) (*Section, func()) {
	s := &Section{ID: id, Title: title, Compares: compares}
	fmt.Printf("\n=== %s\n%s\nmachine: %d cores, %s; load now %.2f\n", title, compares, report.Machine.Cores, report.Machine.Virt, LoadAvg())
	stop := WatchLoad()
	return s, func() {
		l := stop()
		s.Load = &l
		report.Sections = append(report.Sections, s)
		report.SortSections()
		fmt.Printf("--- %s done; load %s\n", title, s.Load)
		// The report so far is written after each section, so that a
		// later section that fails or panics does not lose the others;
		// TestMain writes it whole at the end.
		if err := report.Write(runDir); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}
