package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/loadtest"
	"github.com/bmi-go/bmi/internal/testenv"
)

// loadResult is one phase of the load run.
type loadResult struct {
	Phase     string  `json:"phase"`
	Clients   int     `json:"clients"`
	Seconds   float64 `json:"seconds"`
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	PerSecond float64 `json:"per_second"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	// ClientCPUs is the load generator process's CPU time.
	ClientCPUs float64 `json:"client_cpu_s"`
}

// load runs clients for d in a load generator process of their own, each
// sending the next request of paths (round robin) as alice, and measures
// latencies.
func load(b *testing.B, base string, clients int, d time.Duration, phase string, paths []string) loadResult {
	r, cpu, err := loadtest.RunProcess(context.Background(), "TestLoadChild", loadtest.Spec{Base: base, Clients: clients, Duration: d,
		User: "alice", Password: "alicepw", Paths: paths})
	if err != nil {
		b.Fatal(err)
	}
	lat := r.Latencies
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	return loadResult{Phase: phase, Clients: clients, Seconds: r.Elapsed.Seconds(), Requests: len(lat), Errors: r.Errors,
		PerSecond: r.PerSecond(), P50ms: pct(0.50), P99ms: pct(0.99), MaxMs: pct(1), ClientCPUs: cpu.Seconds()}
}

// TestLoadChild is the API load generator's own process (loadtest.RunProcess);
// in a normal test run it does nothing.
func TestLoadChild(t *testing.T) {
	if _, err := loadtest.ServeChild(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkAPILoad is the API load run (make bench): 200 concurrent
// clients for 30 s on loopback against list and show routes of a real
// core on SQLite (Ceph is not involved in these routes), after a 10 s
// baseline on /healthz in the same run. It writes its figures to
// test-results/bench/api-<timestamp>/. BMI_BENCH_SECONDS shortens it.
func BenchmarkAPILoad(b *testing.B) {
	secs := 30
	if v, err := strconv.Atoi(os.Getenv("BMI_BENCH_SECONDS")); err == nil && v > 0 && v < secs {
		secs = v
	}
	if b.N > 1 {
		b.Skip("one bounded run is the measurement")
	}
	e := newEnv(b, true)
	// Something to list: a few images, disks and boot configs.
	for i := 0; i < 5; i++ {
		call(b, e, "POST", "/api/v1/projects/tenant-a/images/debian/copy", "alice", fmt.Sprintf(`{"dest_project":"tenant-a","name":"img%d"}`, i))
		call(b, e, "POST", "/api/v1/projects/tenant-a/disks", "alice", fmt.Sprintf(`{"image":"debian","name":"disk%d"}`, i))
	}
	paths := []string{"/api/v1/projects/tenant-a/images", "/api/v1/projects/tenant-a/images/debian",
		"/api/v1/projects/tenant-a/snapshots", "/api/v1/projects/tenant-a/disks", "/api/v1/projects/tenant-a/nodes",
		"/api/v1/projects/tenant-a/disks/disk3"}
	rssBefore := loadtest.ProcStatusKiB("VmRSS")
	b.StartTimer()
	base := load(b, e.Server.URL, 200, time.Duration(secs)*time.Second/3, "baseline GET /healthz", []string{"/healthz"})
	run := load(b, e.Server.URL, 200, time.Duration(secs)*time.Second, "list/show (core + SQLite)", paths)
	b.StopTimer()
	report := map[string]any{
		"when": time.Now().UTC().Format(time.RFC3339), "go": runtime.Version(), "cpus": runtime.NumCPU(),
		"phases": []loadResult{base, run}, "rss_before_kib": rssBefore, "rss_after_kib": loadtest.ProcStatusKiB("VmRSS"), "rss_peak_kib": loadtest.ProcStatusKiB("VmHWM"),
		"note": "the clients run in a process of their own on loopback; RSS is the server's process's",
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		report["loadavg"] = strings.TrimSpace(string(la))
	}
	dir := filepath.Join(testenv.RepoRoot(), "test-results", "bench", "api-"+time.Now().UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	js, _ := json.MarshalIndent(report, "", "  ")
	var txt strings.Builder
	fmt.Fprintf(&txt, "API load, %d clients, loopback, %s, %d CPUs, load %v\n", run.Clients, runtime.Version(), runtime.NumCPU(), report["loadavg"])
	for _, r := range []loadResult{base, run} {
		fmt.Fprintf(&txt, "%-28s %6.1f s %8d req %6d err %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n",
			r.Phase, r.Seconds, r.Requests, r.Errors, r.PerSecond, r.P50ms, r.P99ms, r.MaxMs)
	}
	fmt.Fprintf(&txt, "list/show vs baseline: %.2fx the throughput, p99 %.1fx\n", run.PerSecond/base.PerSecond, run.P99ms/base.P99ms)
	fmt.Fprintf(&txt, "RSS %d KiB before, %d KiB after, peak %d KiB\n", rssBefore, report["rss_after_kib"], report["rss_peak_kib"])
	_ = os.WriteFile(filepath.Join(dir, "report.json"), js, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "report.txt"), []byte(txt.String()), 0o644)
	b.Log("\n" + txt.String() + "written to " + dir)
	b.ReportMetric(run.PerSecond, "req/s")
	b.ReportMetric(run.P50ms, "p50-ms")
	b.ReportMetric(run.P99ms, "p99-ms")
	b.ReportMetric(float64(run.Errors), "errors")
}
