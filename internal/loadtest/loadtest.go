// Package loadtest drives an HTTP API with concurrent clients for a bounded
// time and records every request's latency: the API benchmarks'
// (service/apiserver, internal/bench) load generator. RunProcess runs it in
// a process of its own, so that the clients' goroutines, buffers and CPU
// are not counted as the server's.
package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Result is one load run.
type Result struct {
	// Latencies of the requests that completed, sorted ascending.
	Latencies []time.Duration
	// Errors counts requests that failed or did not answer 200.
	Errors int
	// Elapsed is the run's wall time.
	Elapsed time.Duration
}

// PerSecond is the completed requests per second.
func (r Result) PerSecond() float64 { return float64(len(r.Latencies)) / r.Elapsed.Seconds() }

// Run runs clients goroutines for d, each sending GET base+path for the
// next of paths (round robin, from its own offset) with basic auth
// user:password. A request cut by the end of the run is not counted.
func Run(base string, clients int, d time.Duration, user, password string, paths []string) Result {
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var r Result
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for n := i; ctx.Err() == nil; n++ {
				req, _ := http.NewRequestWithContext(ctx, "GET", base+paths[n%len(paths)], nil)
				req.SetBasicAuth(user, password)
				t0 := time.Now()
				res, err := hc.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				if ctx.Err() != nil {
					break // the run ended mid-request: not the server's error
				}
				mine = append(mine, time.Since(t0))
				if err != nil || res.StatusCode != http.StatusOK {
					bad++
				}
			}
			mu.Lock()
			r.Latencies = append(r.Latencies, mine...)
			r.Errors += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.Elapsed = time.Since(start)
	slices.Sort(r.Latencies)
	return r
}

// childEnv carries a child's Spec (JSON) to the re-executed test binary.
const childEnv = "BMI_LOADTEST_SPEC"

// Spec is one load run as RunProcess hands it to its child.
type Spec struct {
	Base     string        `json:"base"`
	Clients  int           `json:"clients"`
	Duration time.Duration `json:"duration"`
	User     string        `json:"user"`
	Password string        `json:"password"`
	Paths    []string      `json:"paths"`
	// Out is the file the child writes its Result to (JSON).
	Out string `json:"out"`
}

// wire is a Result as the child writes it.
type wire struct {
	LatenciesUS []int64       `json:"latencies_us"`
	Errors      int           `json:"errors"`
	Elapsed     time.Duration `json:"elapsed"`
}

// RunProcess runs Run in a child process: the running test binary again,
// with -test.run selecting test, a test that calls ServeChild. The child's
// CPU time (user+system) is returned with the result.
func RunProcess(ctx context.Context, test string, sp Spec) (Result, time.Duration, error) {
	dir, err := os.MkdirTemp("", "bmi-load-")
	if err != nil {
		return Result{}, 0, err
	}
	defer os.RemoveAll(dir)
	sp.Out = filepath.Join(dir, "result.json")
	raw, err := json.Marshal(sp)
	if err != nil {
		return Result{}, 0, err
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	if out, err := cmd.CombinedOutput(); err != nil {
		return Result{}, 0, fmt.Errorf("load generator process: %w: %s", err, out)
	}
	var cpu time.Duration
	if st := cmd.ProcessState; st != nil {
		cpu = st.UserTime() + st.SystemTime()
	}
	b, err := os.ReadFile(sp.Out)
	if err != nil {
		return Result{}, cpu, fmt.Errorf("load generator process wrote no result (did %s call loadtest.ServeChild?): %w", test, err)
	}
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return Result{}, cpu, fmt.Errorf("load generator result: %w", err)
	}
	r := Result{Errors: w.Errors, Elapsed: w.Elapsed, Latencies: make([]time.Duration, len(w.LatenciesUS))}
	for i, us := range w.LatenciesUS {
		r.Latencies[i] = time.Duration(us) * time.Microsecond
	}
	return r, cpu, nil
}

// ServeChild runs the load run of a RunProcess child and writes its
// result; in any other process it does nothing. It reports whether it ran
// (the calling test has nothing else to do then).
func ServeChild() (bool, error) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		return false, nil
	}
	var sp Spec
	if err := json.Unmarshal([]byte(raw), &sp); err != nil {
		return true, fmt.Errorf("%s: %w", childEnv, err)
	}
	if sp.Clients <= 0 || sp.Duration <= 0 || len(sp.Paths) == 0 || sp.Out == "" {
		return true, fmt.Errorf("%s: want clients, a duration, paths and an output file: %s", childEnv, raw)
	}
	r := Run(sp.Base, sp.Clients, sp.Duration, sp.User, sp.Password, sp.Paths)
	w := wire{Errors: r.Errors, Elapsed: r.Elapsed, LatenciesUS: make([]int64, len(r.Latencies))}
	for i, l := range r.Latencies {
		w.LatenciesUS[i] = l.Microseconds()
	}
	b, err := json.Marshal(w)
	if err != nil {
		return true, err
	}
	return true, os.WriteFile(sp.Out, b, 0o600)
}

// ProcStatusKiB reads a kB field (VmRSS, VmHWM...) of /proc/self/status;
// 0 if it cannot.
func ProcStatusKiB(field string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}
