// Package loadtest drives an HTTP API with concurrent clients for a bounded
// time and records every request's latency: the API benchmarks'
// (service/apiserver, internal/bench) load generator.
package loadtest

import (
	"context"
	"io"
	"net/http"
	"os"
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
