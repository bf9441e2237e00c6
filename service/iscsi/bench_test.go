//go:build ceph_preview

package iscsi

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/ceph"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/procenv"
)

// benchDuration is the length of each measurement, and benchRounds the
// number of measurements of each path and workload, one per round, the
// paths of a round in one of their 6 orders; the figure reported is their
// median. The ratios are paired: the median over the rounds of the ratio
// within each round, whose measurements ran one after the other under the
// same conditions (this machine's throughput drifts by ±10 % over
// minutes, more than the differences measured).
const (
	benchDuration = 3 * time.Second
	benchRounds   = 6
)

// ratioKey names a paired ratio: bmi against path, for one workload.
type ratioKey struct {
	path, workload string
	qd             int
}

// benchResult is one measurement, or the median of several.
type benchResult struct {
	path, workload string
	qd             int
	mibs, iops     float64
	cpuUS          float64 // CPU time per I/O of what serves the path, µs (0: not measured)
	lo, hi         float64 // the range of the headline figure over the rounds
}

// headline is the figure compared: IOPS for random I/O, MiB/s otherwise.
func (r benchResult) headline() float64 {
	if strings.HasPrefix(r.workload, "rand") {
		return r.iops
	}
	return r.mibs
}

// median is the run with the median headline figure, with the range of
// all of them.
func median(rs []benchResult) benchResult {
	sorted := append([]benchResult(nil), rs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].headline() < sorted[j].headline() })
	m := sorted[len(sorted)/2]
	m.lo, m.hi = sorted[0].headline(), sorted[len(sorted)-1].headline()
	return m
}

// procCPU is the user + system CPU time of process pid.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// fields after the command name: state is 3, utime 14, stime 15
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100 // USER_HZ
}

// BenchmarkISCSI compares, on one fully written 1 GiB RBD image in one
// run: our target, tgtd with its rbd backing store, and direct librbd.
// Sequential 1 MiB read and write at QD 8, sequential 64 KiB read at QD 1
// (a boot loader's int13 reads), 4 KiB random read at QD 1, 4 and 16 and
// 4 KiB random write at QD 1 and 16; reads are driven by libiscsi's
// iscsi-perf, writes by our Go initiator. Figures go to
// test-results/bench/iscsi-<time>/.
func BenchmarkISCSI(b *testing.B) {
	for _, c := range [][2]string{{"iscsi-perf", "libiscsi-bin"}, {"tgtd", "tgt"}, {"tgtadm", "tgt"}} {
		testenv.RequireCommand(b, c[0], c[1])
	}
	conf, pool, prefix := cephtest.Pool(b)
	ctx := context.Background()
	s, err := ceph.Dial(ctx, ceph.Config{Conf: conf, Pool: pool, OpTimeout: 30 * time.Second}, logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	name := prefix + "bench"
	const size = 1 << 30
	if err := s.Create(ctx, name, size); err != nil {
		b.Fatal(err)
	}
	defer func() {
		// Retry: a watch left by tgtd can hold the image for up to 30 s.
		for i := 0; i < 30; i++ {
			if err := s.Remove(context.Background(), name); err == nil {
				return
			}
			time.Sleep(2 * time.Second)
		}
	}()
	im, err := s.Open(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	fill(b, im, size)
	// Warm the cluster's caches the same way for every path: read it all once.
	librbdRun(im, "seqread", 4<<20, 8, size)
	var results []benchResult
	add := func(r benchResult) {
		b.Logf("%-8s %-9s qd=%-2d %8.1f MiB/s %8.0f IOPS %6.0f µs CPU/IO", r.path, r.workload, r.qd, r.mibs, r.iops, r.cpuUS)
		results = append(results, r)
	}

	// (a) our target and (b) tgtd --bstype rbd on another loopback port
	// serve the same image at the same time; (c) is librbd from Go. Each
	// workload runs benchRounds times, in every order of the paths, so
	// that none profits from the cluster warming up or the machine's
	// drift.
	tg, addr := startTarget(b, Config{})
	iqn := testIQN(77)
	if err := tg.Export(ctx, Export{IQN: iqn, Volume: im}); err != nil {
		b.Fatal(err)
	}
	taddr, tgtdPID, stop := startTGTD(b, conf, pool, name)
	defer stop()
	tiqn := "iqn.2026-11.org.bmi:bench.tgtd"
	im2, err := s.Open(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	defer im2.Close()
	type target struct {
		path, url, addr, iqn string
		lun                  byte
	}
	paths := []target{
		{"bmi", "iscsi://" + addr + "/" + iqn + "/0", addr, iqn, 0},
		{"tgtd", "iscsi://" + taddr + "/" + tiqn + "/1", taddr, tiqn, 1},
		{"librbd", "", "", "", 0},
	}
	type workload struct {
		name string
		qd   int
	}
	// cpu is the CPU time of what serves a path: tgtd's process, or this
	// one (our target, or librbd) — the readers, iscsi-perf, run apart.
	cpu := func(path string) time.Duration {
		if path == "tgtd" {
			return procCPU(tgtdPID)
		}
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	orders := [benchRounds][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}, {0, 2, 1}, {2, 0, 1}, {1, 0, 2}}
	ratios := map[ratioKey][]float64{}
	only := strings.Fields(os.Getenv("BMI_BENCH_ISCSI_ONLY"))       // e.g. "seqread randread1": a subset, while tuning
	onlyPaths := strings.Fields(os.Getenv("BMI_BENCH_ISCSI_PATHS")) // e.g. "bmi": one path, for a CPU profile
	// seqread64k at QD 1 is how a BIOS boot loader reads a kernel through
	// iPXE's int13 (one 64 KiB command at a time, in sequence).
	for _, w := range []workload{{"seqread", 8}, {"seqread64k", 1}, {"seqwrite", 8}, {"randread", 1}, {"randread", 4}, {"randread", 16},
		{"randwrite", 1}, {"randwrite", 16}} {
		if len(only) > 0 && !slices.Contains(only, w.name) && !slices.Contains(only, w.name+strconv.Itoa(w.qd)) {
			continue
		}
		runs := map[string][]benchResult{}
		for round := range benchRounds {
			for _, i := range orders[round] {
				p := paths[i]
				if (p.path == "librbd" && w.name == "seqwrite") || (len(onlyPaths) > 0 && !slices.Contains(onlyPaths, p.path)) {
					continue
				}
				c0 := cpu(p.path)
				var r benchResult
				switch {
				case p.path == "librbd" && w.name == "seqread":
					r = librbdRun(im2, "seqread", 1<<20, 8, size)
				case p.path == "librbd" && w.name == "seqread64k":
					r = librbdRun(im2, "seqread64k", 64<<10, 1, size)
				case p.path == "librbd":
					r = librbdRun(im2, w.name, 4096, w.qd, size)
				case w.name == "seqwrite":
					r = seqWrite(b, p.path, p.addr, p.iqn, p.lun)
				case w.name == "randwrite":
					r = writeRun(b, p.path, p.addr, p.iqn, p.lun, "randwrite", 8, w.qd, true)
				case w.name == "seqread":
					r = perfRun(b, p.path, p.url, "seqread", 2048, 8, false)
				case w.name == "seqread64k":
					r = perfRun(b, p.path, p.url, "seqread64k", 128, 1, false)
				default:
					r = perfRun(b, p.path, p.url, "randread", 8, w.qd, true)
				}
				if r.iops > 0 {
					r.cpuUS = float64((cpu(p.path) - c0).Microseconds()) / (r.iops * benchDuration.Seconds())
				}
				runs[p.path] = append(runs[p.path], r)
			}
		}
		for _, p := range paths {
			if rs := runs[p.path]; len(rs) > 0 {
				add(median(rs))
			}
			if p.path == "bmi" || len(runs[p.path]) != len(runs["bmi"]) {
				continue
			}
			for i, r := range runs[p.path] {
				if r.headline() > 0 {
					k := ratioKey{p.path, w.name, w.qd}
					ratios[k] = append(ratios[k], runs["bmi"][i].headline()/r.headline())
				}
			}
		}
	}
	if err := tg.Unexport(ctx, iqn); err != nil { // closes im
		b.Fatal(err)
	}
	report(b, results, ratios)
}

// fill writes the whole image with non-zero data, 4 MiB at a time, 8 in flight.
func fill(b testing.TB, im *ceph.Image, size int64) {
	buf := make([]byte, 4<<20)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var ferr atomic.Value
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				off := next.Add(int64(len(buf))) - int64(len(buf))
				if off >= size {
					return
				}
				if _, err := im.WriteAt(buf, off); err != nil {
					ferr.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := ferr.Load().(error); err != nil {
		b.Fatalf("fill: %v", err)
	}
}

var perfIOPS = regexp.MustCompile(`iops average ([0-9]+)`)

// perfRun reads with libiscsi's iscsi-perf for benchDuration.
func perfRun(b *testing.B, path, url, workload string, blocks, qd int, random bool) benchResult {
	args := []string{"-i", "iqn.2026-11.org.test:bench", "-b", strconv.Itoa(blocks), "-m", strconv.Itoa(qd),
		"-t", strconv.Itoa(int(benchDuration.Seconds()))}
	if random {
		args = append(args, "-r")
	}
	o, err := exec.Command("iscsi-perf", append(args, url)...).CombinedOutput()
	m := perfIOPS.FindAllStringSubmatch(string(o), -1)
	if err != nil || len(m) == 0 {
		b.Fatalf("iscsi-perf %v against %s: %v\n%s", args, path, err, o)
	}
	iops, _ := strconv.ParseFloat(m[len(m)-1][1], 64)
	return benchResult{path: path, workload: workload, qd: qd, iops: iops, mibs: iops * float64(blocks*512) / (1 << 20)}
}

// seqWrite writes 1 MiB commands, 8 in flight, for benchDuration.
func seqWrite(b *testing.B, path, addr, iqn string, lun byte) benchResult {
	return writeRun(b, path, addr, iqn, lun, "seqwrite", 2048, 8, false)
}

// writerJob is what TestBenchWriter runs in its own process.
type writerJob struct {
	Path, Addr, IQN, Workload string
	LUN                       byte
	Blocks                    uint16
	QD                        int
	Random                    bool
}

// writerEnv carries a writerJob (JSON) to the writer process.
const writerEnv = "BMI_BENCH_ISCSI_WRITER"

// writeRun runs the writer (the Go test initiator) in a process of its own,
// this test binary again, as iscsi-perf runs apart for reads: the
// initiator's CPU then falls on neither target's side.
func writeRun(b *testing.B, path, addr, iqn string, lun byte, workload string, blocks uint16, qd int, random bool) benchResult {
	job, _ := json.Marshal(writerJob{Path: path, Addr: addr, IQN: iqn, LUN: lun, Workload: workload, Blocks: blocks, QD: qd, Random: random})
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchWriter$", "-test.v")
	cmd.Env = append(os.Environ(), writerEnv+"="+string(job))
	out, err := cmd.CombinedOutput()
	_, js, ok := strings.Cut(string(out), "WRITER-RESULT ")
	if err != nil || !ok {
		b.Fatalf("writer process (%s): %v\n%s", job, err, out)
	}
	js, _, _ = strings.Cut(js, "\n")
	var r struct{ MiBs, IOPS float64 }
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		b.Fatalf("writer process: %v: %q", err, js)
	}
	return benchResult{path: path, workload: workload, qd: qd, mibs: r.MiBs, iops: r.IOPS}
}

// TestBenchWriter is BenchmarkISCSI's writer process (writeRun); without
// its job in the environment it has nothing to do.
func TestBenchWriter(t *testing.T) {
	raw := os.Getenv(writerEnv)
	if raw == "" {
		t.Skip("the writer process of BenchmarkISCSI (run by it)")
	}
	var j writerJob
	if err := json.Unmarshal([]byte(raw), &j); err != nil {
		t.Fatal(err)
	}
	r := writeIn(t, j)
	js, _ := json.Marshal(struct{ MiBs, IOPS float64 }{r.mibs, r.iops})
	fmt.Printf("WRITER-RESULT %s\n", js)
}

// writeIn writes commands of j.Blocks 512-byte blocks, j.QD in flight,
// for benchDuration: in sequence over the first GiB, or at random 4 KiB
// aligned offsets in it.
func writeIn(b testing.TB, j writerJob) benchResult {
	path, addr, iqn, lun, workload, blocks, qd, random := j.Path, j.Addr, j.IQN, j.LUN, j.Workload, j.Blocks, j.QD, j.Random
	c := dial(b, addr)
	c.lun = lun
	if st, _ := c.login(loginOpts{target: iqn, keys: []keyValue{{"MaxRecvDataSegmentLength", "262144"},
		{"MaxBurstLength", "1048576"}, {"FirstBurstLength", "262144"}, {"InitialR2T", "No"}, {"ImmediateData", "Yes"}}}); st != 0 {
		b.Fatalf("login to %s: 0x%04x", path, st)
	}
	// Clear the unit attention a fresh target reports (tgtd: power on reset).
	for range 3 {
		tur := c.submit([]byte{0, 0, 0, 0, 0, 0}, 0, false, nil)
		c.wait(tur)
		if tur.status == statusGood {
			break
		}
	}
	size := int(blocks) * 512
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i*13 + 5)
	}
	rng := rand.New(rand.NewPCG(uint64(qd), uint64(blocks)))
	start := time.Now()
	var q []*ctask
	n, lba := 0, uint32(0)
	for time.Since(start) < benchDuration {
		for len(q) < qd {
			if random {
				lba = uint32(rng.IntN((1<<21)/8)) * 8
			}
			q = append(q, c.submit(rw10(0x2a, lba, blocks), uint32(size), false, buf))
			if !random {
				lba = (lba + uint32(blocks)) % (1 << 21)
			}
		}
		c.wait(q[0])
		if q[0].status != statusGood {
			b.Fatalf("write to %s: status 0x%x sense %x", path, q[0].status, q[0].sense)
		}
		q = q[1:]
		n++
	}
	c.wait(q...)
	d := time.Since(start).Seconds()
	c.logout()
	return benchResult{path: path, workload: workload, qd: qd, mibs: float64(n) * float64(size) / (1 << 20) / d, iops: float64(n) / d}
}

// startTGTD runs tgtd with the image as LUN 1 and returns its portal, its
// pid and a function that kills it (tgtd ignores SIGTERM).
func startTGTD(b *testing.B, conf, pool, image string) (string, int, func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	ctl := strconv.Itoa(20000 + rand.IntN(10000))
	cmd := exec.Command("tgtd", "-f", "-C", ctl, "--iscsi", "portal="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			// Close the image cleanly first: a killed client's watch on the
			// image lingers for 30 s and blocks its removal.
			exec.Command("tgtadm", "-C", ctl, "--lld", "iscsi", "--op", "delete", "--mode", "logicalunit", "--tid", "1", "--lun", "1").Run()
			cmd.Process.Signal(syscall.SIGKILL) // tgtd ignores SIGTERM
			cmd.Wait()
		})
	}
	b.Cleanup(stop)
	adm := func(args ...string) {
		var err error
		var o []byte
		for range 50 { // tgtd needs a moment to open its control socket
			o, err = exec.Command("tgtadm", append([]string{"-C", ctl, "--lld", "iscsi"}, args...)...).CombinedOutput()
			if err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		stop()
		b.Fatalf("tgtadm %v: %v\n%s", args, err, o)
	}
	adm("--op", "new", "--mode", "target", "--tid", "1", "-T", "iqn.2026-11.org.bmi:bench.tgtd")
	adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "--bstype", "rbd",
		"--backing-store", pool+"/"+image, "--bsopts", "conf="+conf+";id=admin")
	adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")
	_ = port
	return addr, cmd.Process.Pid, stop
}

// librbdRun reads from the image directly with qd goroutines (writes, for
// randwrite).
func librbdRun(im *ceph.Image, workload string, bs, qd int, size int64) benchResult {
	var ops atomic.Int64
	var next atomic.Int64
	deadline := time.Now().Add(benchDuration)
	var wg sync.WaitGroup
	for g := range qd {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, bs)
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for time.Now().Before(deadline) {
				var off int64
				if strings.HasPrefix(workload, "seq") {
					off = (next.Add(int64(bs)) - int64(bs)) % size
				} else {
					off = rng.Int64N(size/int64(bs)) * int64(bs)
				}
				var err error
				if workload == "randwrite" {
					_, err = im.WriteAt(buf, off)
				} else {
					_, err = im.ReadAt(buf, off)
				}
				if err != nil {
					return
				}
				ops.Add(1)
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	d := time.Since(start).Seconds()
	iops := float64(ops.Load()) / d
	return benchResult{path: "librbd", workload: workload, qd: qd, iops: iops, mibs: iops * float64(bs) / (1 << 20)}
}

// report writes the figures and the ratios.
func report(b *testing.B, rs []benchResult, ratios map[ratioKey][]float64) {
	find := func(path, w string, qd int) (benchResult, bool) {
		for _, r := range rs {
			if r.path == path && r.workload == w && r.qd == qd {
				return r, true
			}
		}
		return benchResult{}, false
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "# service/iscsi vs tgtd (bs_rbd) vs librbd, one fully written 1 GiB RBD image, %s each, %s\n",
		benchDuration, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&sb, "# reads: iscsi-perf (libiscsi); writes: the Go test initiator, in a process of its own; librbd: service/ceph Image.ReadAt/WriteAt from goroutines\n")
	fmt.Fprintf(&sb, "# each figure: the median of %d runs, one per round, in every order of the paths (range in brackets); GOMAXPROCS=%d, %d CPUs\n",
		benchRounds, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(&sb, "# Go runtime: GODEBUG=%q (bmid serve runs with %s, package procenv; %s=default leaves it out)\n",
		os.Getenv("GODEBUG"), procenv.Setting, procenv.OptOut)
	fmt.Fprintf(&sb, "# bmi/tgtd, bmi/librbd: paired, the median of the ratios within each round (range in brackets)\n")
	fmt.Fprintf(&sb, "# CPU/IO: CPU time per I/O of what serves the path (this process for bmi and librbd, tgtd's process), not of the reader or writer\n\n")
	fmt.Fprintf(&sb, "| workload | bmi | tgtd | librbd | bmi/tgtd | bmi/librbd | CPU/IO bmi | CPU/IO tgtd | CPU/IO librbd |\n|---|---|---|---|---|---|---|---|---|\n")
	row := func(label, w string, qd int, unit string) {
		ratio := func(path string) string {
			m, lo, hi, ok := pairedRatio(ratios[ratioKey{path, w, qd}])
			if !ok {
				return "—"
			}
			return fmt.Sprintf("%.2f (%.2f–%.2f)", m, lo, hi)
		}
		cell := func(path string) string {
			r, ok := find(path, w, qd)
			if !ok {
				return "—"
			}
			return fmt.Sprintf("%.0f %s (%.0f–%.0f)", r.headline(), unit, r.lo, r.hi)
		}
		cpuCell := func(path string) string {
			if r, ok := find(path, w, qd); ok && r.cpuUS > 0 {
				return fmt.Sprintf("%.0f µs", r.cpuUS)
			}
			return "—"
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label, cell("bmi"), cell("tgtd"), cell("librbd"),
			ratio("tgtd"), ratio("librbd"), cpuCell("bmi"), cpuCell("tgtd"), cpuCell("librbd"))
	}
	row("seq read 1 MiB QD8", "seqread", 8, "MiB/s")
	row("seq read 64 KiB QD1 (a boot loader through int13)", "seqread64k", 1, "MiB/s")
	row("seq write 1 MiB QD8", "seqwrite", 8, "MiB/s")
	for _, qd := range []int{1, 4, 16} {
		row(fmt.Sprintf("rand read 4 KiB QD%d", qd), "randread", qd, "IOPS")
	}
	for _, qd := range []int{1, 16} {
		row(fmt.Sprintf("rand write 4 KiB QD%d", qd), "randwrite", qd, "IOPS")
	}
	dir := filepath.Join("..", "..", "test-results", "bench", "iscsi-"+time.Now().UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("figures in %s:\n%s", dir, sb.String())
	if m, _, _, ok := pairedRatio(ratios[ratioKey{"tgtd", "seqread", 8}]); ok {
		b.ReportMetric(m, "seqread-x-tgtd")
	}
	if m, _, _, ok := pairedRatio(ratios[ratioKey{"tgtd", "randread", 16}]); ok {
		b.ReportMetric(m, "randread16-x-tgtd")
	}
	if m, _, _, ok := pairedRatio(ratios[ratioKey{"tgtd", "randwrite", 16}]); ok {
		b.ReportMetric(m, "randwrite16-x-tgtd")
	}
}

// pairedRatio is the median of the per-round ratios, with their range.
func pairedRatio(rs []float64) (m, lo, hi float64, ok bool) {
	if len(rs) == 0 {
		return 0, 0, 0, false
	}
	s := slices.Sorted(slices.Values(rs))
	m = s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return m, s[0], s[len(s)-1], true
}
