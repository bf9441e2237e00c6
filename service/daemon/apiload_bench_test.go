//go:build ceph_preview

package daemon

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/loadtest"
	"github.com/bmi-go/bmi/internal/pgtest"
	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/config"
)

// TestLoadChild is the API load generator's own process
// (loadtest.RunProcess, BenchmarkGatewayAPI); in a normal test run it
// does nothing.
func TestLoadChild(t *testing.T) {
	if _, err := loadtest.ServeChild(); err != nil {
		t.Fatal(err)
	}
}

// apiSetup is one set-up of BenchmarkGatewayAPI.
type apiSetup struct {
	name     string
	postgres bool
	gateways int    // bmid processes (gateways on PostgreSQL)
	clients  int    // load generator clients per bmid
	maxIdle  string // the PostgreSQL pool's idle connections; "": bmid's own
	proxy    bool   // through lab.APIProxy, as the lab's host reaches the APIs
}

// BenchmarkGatewayAPI is the two-gateway API path without the lab's VMs:
// real bmid processes (real Ceph, HIL emulator) on SQLite, or as one or
// two gateways on one PostgreSQL database, each API driven by a load
// generator in a process of its own (100 clients in all; list/show as a
// project member), set-ups run one after the other on the same machine.
// Per set-up: throughput, latency, the CPU bmid and PostgreSQL spent per
// request, the PostgreSQL sessions opened, and bmid's pool statistics
// (go_sql_*: requests that waited for a connection, connections closed
// while idle). The pool's "before" (4 idle connections kept, as bmid had)
// runs beside bmid's own, in ABBA order. Run under
// scripts/with-test-ceph.sh and scripts/with-test-postgres.sh:
//
//	go test -tags pacific,ceph_preview -run '^$' -bench BenchmarkGatewayAPI -benchtime 1x ./service/daemon
func BenchmarkGatewayAPI(b *testing.B) {
	d := 8 * time.Second
	if os.Getenv("BMI_BENCH_QUICK") == "1" {
		d = 3 * time.Second
	}
	setups := []apiSetup{
		{name: "SQLite, 1 bmid", gateways: 1, clients: 100},
		{name: "PostgreSQL, 1 gateway", postgres: true, gateways: 1, clients: 100},
		{name: "PostgreSQL, 2 gateways, 4 idle (before)", postgres: true, gateways: 2, clients: 50, maxIdle: "4"},
		{name: "PostgreSQL, 2 gateways", postgres: true, gateways: 2, clients: 50},
		{name: "PostgreSQL, 2 gateways", postgres: true, gateways: 2, clients: 50},
		{name: "PostgreSQL, 2 gateways, 4 idle (before)", postgres: true, gateways: 2, clients: 50, maxIdle: "4"},
		{name: "PostgreSQL, 2 gateways, lab API proxy", postgres: true, gateways: 2, clients: 50, proxy: true},
	}
	hilURL := startHIL(b)
	for i := 0; i < b.N; i++ {
		for _, s := range setups {
			b.Log(runAPISetup(b, hilURL, s, d))
		}
	}
}

// runAPISetup starts s's bmid processes with a project, an image and two
// provisioned nodes, drives their APIs for d, and returns a line of
// figures.
func runAPISetup(b *testing.B, hilURL string, s apiSetup, d time.Duration) string {
	ctx := context.Background()
	dir, uid := b.TempDir(), newUID(b)
	var dsn string
	var pg *sql.DB
	if s.postgres {
		dsn = pgtest.Database(b)
		var err error
		if pg, err = sql.Open("pgx", dsn); err != nil {
			b.Fatal(err)
		}
		defer pg.Close()
	}
	portal := freeAddr(b)
	var gws []*gatewayProc
	for g := range s.gateways {
		gdir := filepath.Join(dir, strconv.Itoa(g))
		if err := os.MkdirAll(gdir, 0o700); err != nil {
			b.Fatal(err)
		}
		cfg := siteConfig(b, uid, hilURL, gdir)
		cfg.Security.KeyFile = filepath.Join(dir, "secret.key")
		if s.postgres {
			cfg.State = config.State{Engine: "postgres", DSN: dsn}
			cfg.Gateway = config.Gateway{ID: fmt.Sprintf("gw-%d", g), Group: "rack1", Lease: 3 * time.Second, Addresses: []string{cfg.ISCSI.Listen[0]}}
			cfg.ISCSI.Portal = portal
		}
		if err := cfg.Validate("test"); err != nil {
			b.Fatal(err)
		}
		if g == 0 {
			rbd(b, cfg.Ceph.Conf, cfg.Ceph.Pool, "create", "--size", "64M", uid+"-golden")
			b.Cleanup(func() { rbd(b, cfg.Ceph.Conf, cfg.Ceph.Pool, "rm", uid+"-golden") })
		}
		b.Setenv("BMI_GATEWAY_PG_MAXIDLE", s.maxIdle)
		gws = append(gws, startGateway(b, cfg, gdir))
	}
	adm := gws[0].client(b, admin.User, string(admin.Password))
	if _, err := adm.CreateProject(ctx, "tenant-a"); err != nil {
		b.Fatal(err)
	}
	if _, _, err := adm.Import(ctx, "tenant-a", api.ImportRequest{Source: uid + "-golden", Name: "debian"}, false); err != nil {
		b.Fatal(err)
	}
	al := gws[0].client(b, "alice", "alice-secret")
	for _, n := range []string{"node-01", "node-02"} {
		if _, _, err := al.Provision(ctx, "tenant-a", n, api.ProvisionRequest{Image: "debian", NIC: "eth0"}, false); err != nil {
			b.Fatal(err)
		}
	}
	var bases []string
	for _, g := range gws {
		base := "http://" + g.cfg.API.Listen
		if s.proxy {
			pctx, cancel := context.WithCancel(ctx)
			px := &lab.APIProxy{Listen: freeAddr(b), Backends: []string{g.cfg.API.Listen}}
			done := make(chan error, 1)
			go func() { done <- px.Serve(pctx) }()
			b.Cleanup(func() { cancel(); <-done })
			base = "http://" + px.Listen
		}
		bases = append(bases, base)
	}
	paths := []string{"/api/v1/projects/tenant-a/images", "/api/v1/projects/tenant-a/disks",
		"/api/v1/projects/tenant-a/nodes", "/api/v1/projects/tenant-a/snapshots"}

	sessions0 := pgSessions(b, pg)
	pgCPU0 := commandCPU("postgres")
	var bmidCPU0 []time.Duration
	for _, g := range gws {
		bmidCPU0 = append(bmidCPU0, processCPU(g.cmd.Process.Pid))
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		lat  []time.Duration
		errs int
		long time.Duration
	)
	for _, base := range bases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, _, err := loadtest.RunProcess(ctx, "TestLoadChild", loadtest.Spec{Base: base, Clients: s.clients, Duration: d,
				User: "alice", Password: "alice-secret", Paths: paths})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, r.Latencies...)
			errs += r.Errors
			long = max(long, r.Elapsed)
		}()
	}
	wg.Wait()
	if len(lat) == 0 {
		b.Fatalf("%s: no request completed", s.name)
	}
	pgCPU := commandCPU("postgres") - pgCPU0
	var bmidCPU time.Duration
	var waits, idleClosed float64
	for i, g := range gws {
		bmidCPU += processCPU(g.cmd.Process.Pid) - bmidCPU0[i]
		m := scrapeMetrics(b, g.cfg.API.Listen)
		waits += sample(m, "go_sql_wait_count_total", `db_name="state"`)
		idleClosed += sample(m, "go_sql_max_idle_closed_total", `db_name="state"`)
	}
	sessions := pgSessions(b, pg) - sessions0
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(100 * time.Microsecond) }
	perReq := func(c time.Duration) time.Duration { return (c / time.Duration(len(lat))).Round(time.Microsecond) }
	line := fmt.Sprintf("%-42s %3d clients: %6.0f req/s, %d errors, p50 %v, p99 %v; CPU per request: bmid %v, postgres %v",
		s.name, s.clients*s.gateways, float64(len(lat))/long.Seconds(), errs, pct(0.5), pct(0.99), perReq(bmidCPU), perReq(pgCPU))
	if s.postgres {
		line += fmt.Sprintf("; PostgreSQL sessions opened %d, pool waits %.0f, idle closes %.0f (since start)", sessions, waits, idleClosed)
	}
	for _, n := range []string{"node-01", "node-02"} {
		if err := al.Deprovision(ctx, "tenant-a", n, "eth0"); err != nil {
			b.Fatal(err)
		}
	}
	if err := adm.RemoveImage(ctx, "tenant-a", "debian"); err != nil {
		b.Fatal(err)
	}
	for _, g := range gws {
		_ = g.cmd.Process.Kill()
		g.exited <- <-g.exited // gone before the next set-up; still there for startGateway's clean-up
	}
	return line
}

// pgSessions is how many sessions the database of db has had (0 without
// one).
func pgSessions(b *testing.B, db *sql.DB) int64 {
	if db == nil {
		return 0
	}
	var n int64
	if err := db.QueryRow(`SELECT sessions FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// scrapeMetrics reads the /metrics of the API at addr.
func scrapeMetrics(b *testing.B, addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return string(body)
}

// processCPU is the user+system CPU time process pid has used (0 if it
// is gone).
func processCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100) // USER_HZ
}

// commandCPU sums processCPU over the running processes named comm (a
// PostgreSQL backend's CPU is lost when it exits: with churning sessions
// this undercounts).
func commandCPU(comm string) time.Duration {
	ents, _ := os.ReadDir("/proc")
	var sum time.Duration
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(c)) == comm {
			sum += processCPU(pid)
		}
	}
	return sum
}
