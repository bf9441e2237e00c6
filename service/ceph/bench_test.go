//go:build ceph_preview

package ceph

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/testenv"
)

// BenchmarkRBD measures, on the test cluster, what the issue asks for and
// compares each figure with the rbd CLI on the same data in the same run:
// clone latency of a 1 GiB vs a 100 GiB sparse parent, flatten and deep-copy
// throughput vs `rbd deep cp` (and `rbd flatten`), and import of a 1 GiB
// half-sparse file vs `rbd import`. Nothing is asserted; the figures go to
// test-results/bench/ceph-<timestamp>/ (results.json, summary.md).
//
//	go test -tags pacific,ceph_preview -run '^$' -bench RBD ./service/ceph
func BenchmarkRBD(b *testing.B) {
	s, p := newStore(b)
	conf, pool := clusterOf(b)
	ctx := context.Background()
	r := &benchResults{Figures: map[string]float64{}}
	rbdCLI := func(b *testing.B, args ...string) {
		b.Helper()
		if _, err := cephtest.RBD(conf, pool, args...); err != nil {
			b.Fatal(err)
		}
	}

	for _, gib := range []uint64{1, 100} {
		b.Run(fmt.Sprintf("clone/parent=%dGiB", gib), func(b *testing.B) {
			par := fmt.Sprintf("%sclonepar%d", p, gib)
			mustOK(b, s.Create(ctx, par, gib<<30))
			fill(b, s, par, 64<<20, 1) // a little data; the rest is sparse
			mustOK(b, s.CreateSnapshot(ctx, par, "s"))
			mustOK(b, s.ProtectSnapshot(ctx, par, "s"))
			var lat []time.Duration
			for i := 0; i < max(b.N, 10); i++ {
				kid := fmt.Sprintf("%skid%d-%d", p, gib, i)
				t0 := time.Now()
				mustOK(b, s.Clone(ctx, par, "s", kid))
				lat = append(lat, time.Since(t0))
				b.StopTimer()
				mustOK(b, s.Remove(ctx, kid))
				b.StartTimer()
			}
			b.StopTimer()
			med := median(lat)
			b.ReportMetric(float64(med.Microseconds())/1000, "ms/clone")
			r.set(fmt.Sprintf("clone_%dgib_ms", gib), float64(med.Microseconds())/1000)
			cleanup(b, s, par)
		})
	}

	// a fully written 1 GiB parent for flatten and deep copy
	const size = 1 << 30
	full := p + "full"
	mustOK(b, s.Create(ctx, full, size))
	fillFull(b, s, full, size)
	mustOK(b, s.CreateSnapshot(ctx, full, "s"))
	mustOK(b, s.ProtectSnapshot(ctx, full, "s"))
	mib := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }

	b.Run("flatten/1GiB", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			mustOK(b, s.Clone(ctx, full, "s", p+"fl"))
			b.StartTimer()
			t0 := time.Now()
			mustOK(b, s.Flatten(ctx, p+"fl", func(uint64, uint64) {}))
			d := time.Since(t0)
			b.StopTimer()
			mustOK(b, s.Remove(ctx, p+"fl"))
			mustOK(b, s.Clone(ctx, full, "s", p+"flcli"))
			t0 = time.Now()
			rbdCLI(b, "flatten", "--no-progress", p+"flcli")
			dc := time.Since(t0)
			mustOK(b, s.Remove(ctx, p+"flcli"))
			b.ReportMetric(mib(d), "MiB/s")
			r.set("flatten_go_mibs", mib(d))
			r.set("flatten_rbd_cli_mibs", mib(dc))
			b.StartTimer()
		}
	})

	b.Run("deepcopy/1GiB", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			mustOK(b, s.DeepCopy(ctx, full, p+"dc"))
			d := time.Since(t0)
			b.StopTimer()
			cleanup(b, s, p+"dc")
			t0 = time.Now()
			rbdCLI(b, "deep", "cp", "--no-progress", full, p+"dccli")
			dc := time.Since(t0)
			cleanup(b, s, p+"dccli")
			b.ReportMetric(mib(d), "MiB/s")
			r.set("deepcopy_go_mibs", mib(d))
			r.set("deepcopy_rbd_deep_cp_mibs", mib(dc))
			b.StartTimer()
		}
	})
	cleanup(b, s, full)

	b.Run("import/1GiB-half-sparse", func(b *testing.B) {
		file := filepath.Join(b.TempDir(), "image.raw")
		writeHalfSparse(b, file, size)
		for i := 0; i < b.N; i++ {
			f, err := os.Open(file)
			mustOK(b, err)
			t0 := time.Now()
			mustOK(b, s.Import(ctx, p+"imp", f, size, nil))
			d := time.Since(t0)
			f.Close()
			b.StopTimer()
			mustOK(b, s.Remove(ctx, p+"imp"))
			t0 = time.Now()
			rbdCLI(b, "import", "--no-progress", "--image-feature", "layering,exclusive-lock,object-map,fast-diff,deep-flatten", file, p+"impcli")
			dc := time.Since(t0)
			mustOK(b, s.Remove(ctx, p+"impcli"))
			b.ReportMetric(mib(d), "MiB/s")
			r.set("import_go_mibs", mib(d))
			r.set("import_rbd_import_mibs", mib(dc))
			b.StartTimer()
		}
	})
	r.write(b)
}

// fillFull writes every byte of the image (4 MiB writes, 8 in flight).
func fillFull(b *testing.B, s *Store, name string, size uint64) {
	img, err := s.Open(context.Background(), name)
	mustOK(b, err)
	defer img.Close()
	offs := make(chan uint64)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := pattern(4<<20, byte(w))
			for off := range offs {
				buf[0] = byte(off >> 22)
				if _, err := img.WriteAt(buf, int64(off)); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for off := uint64(0); off < size; off += 4 << 20 {
		offs <- off
	}
	close(offs)
	wg.Wait()
}

// writeHalfSparse writes a file of size bytes: 1 MiB data, 1 MiB zeros, ...
func writeHalfSparse(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	mustOK(b, err)
	defer f.Close()
	data := pattern(1<<20, 9)
	zero := make([]byte, 1<<20)
	for off := int64(0); off < size; off += 2 << 20 {
		_, err := f.Write(data)
		mustOK(b, err)
		_, err = f.Write(zero)
		mustOK(b, err)
	}
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

type benchResults struct {
	mu      sync.Mutex
	When    string             `json:"when"`
	LoadAvg string             `json:"loadavg"` // /proc/loadavg at the end: the machine is shared
	Figures map[string]float64 `json:"figures"`
	Ratios  map[string]float64 `json:"ratios"`
}

func (r *benchResults) set(k string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Figures[k] = v
}

// write computes the ratios and writes results.json and summary.md under
// test-results/bench/ceph-<timestamp>/ at the module root (or
// $BMI_BENCH_DIR).
func (r *benchResults) write(b *testing.B) {
	f := r.Figures
	ratio := func(a, c string) float64 {
		if f[c] == 0 {
			return 0
		}
		return f[a] / f[c]
	}
	r.Ratios = map[string]float64{
		"clone_100gib_vs_1gib":       ratio("clone_100gib_ms", "clone_1gib_ms"),
		"flatten_go_vs_rbd_deep_cp":  ratio("flatten_go_mibs", "deepcopy_rbd_deep_cp_mibs"),
		"flatten_go_vs_rbd_flatten":  ratio("flatten_go_mibs", "flatten_rbd_cli_mibs"),
		"deepcopy_go_vs_rbd_deep_cp": ratio("deepcopy_go_mibs", "deepcopy_rbd_deep_cp_mibs"),
		"import_go_vs_rbd_import":    ratio("import_go_mibs", "import_rbd_import_mibs"),
	}
	now := time.Now().UTC()
	r.When = now.Format(time.RFC3339)
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.LoadAvg = strings.TrimSpace(string(la))
	}
	dir := os.Getenv("BMI_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(), "test-results", "bench", "ceph-"+now.Format("20060102T150405Z"))
	}
	mustOK(b, os.MkdirAll(dir, 0o755))
	js, err := json.MarshalIndent(r, "", "  ")
	mustOK(b, err)
	mustOK(b, os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644))
	var md strings.Builder
	fmt.Fprintf(&md, "# RBD benchmark (%s)\n\nOne run on the test cluster (single OSD on a sparse file); baselines are the rbd CLI on the same data in the same run. Load average at the end: %s.\n\n", r.When, r.LoadAvg)
	fmt.Fprintf(&md, "| measure | Go (service/ceph) | rbd CLI | ratio |\n|---|---|---|---|\n")
	fmt.Fprintf(&md, "| clone latency, 1 GiB parent | %.1f ms | | |\n", f["clone_1gib_ms"])
	fmt.Fprintf(&md, "| clone latency, 100 GiB parent | %.1f ms | | %.2f × the 1 GiB clone |\n", f["clone_100gib_ms"], r.Ratios["clone_100gib_vs_1gib"])
	fmt.Fprintf(&md, "| flatten 1 GiB | %.0f MiB/s | rbd flatten %.0f MiB/s, rbd deep cp %.0f MiB/s | %.2f / %.2f |\n", f["flatten_go_mibs"], f["flatten_rbd_cli_mibs"], f["deepcopy_rbd_deep_cp_mibs"], r.Ratios["flatten_go_vs_rbd_flatten"], r.Ratios["flatten_go_vs_rbd_deep_cp"])
	fmt.Fprintf(&md, "| deep copy 1 GiB | %.0f MiB/s | rbd deep cp %.0f MiB/s | %.2f |\n", f["deepcopy_go_mibs"], f["deepcopy_rbd_deep_cp_mibs"], r.Ratios["deepcopy_go_vs_rbd_deep_cp"])
	fmt.Fprintf(&md, "| import 1 GiB file (half zeros) | %.0f MiB/s | rbd import %.0f MiB/s | %.2f |\n", f["import_go_mibs"], f["import_rbd_import_mibs"], r.Ratios["import_go_vs_rbd_import"])
	mustOK(b, os.WriteFile(filepath.Join(dir, "summary.md"), []byte(md.String()), 0o644))
	b.Logf("benchmark results in %s\n%s", dir, md.String())
}
