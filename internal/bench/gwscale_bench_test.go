//go:build ceph_preview

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/loadtest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/logging"
)

// BenchmarkScale is section 13 of `make bench`: how far one gateway goes
// ([gateways]): bmid's RSS per exported idle disk and its idle CPU with
// 1 000 thin clones exported, and a login storm of 200 initiator sessions.
// Nothing is asserted; BMI_BENCH_QUICK=1 uses 100 disks and 50 logins.
//
//	BMI_BENCH_QUICK=1 go test -tags pacific,ceph_preview -run '^$' -bench Scale -benchtime 1x ./internal/bench
func BenchmarkScale(b *testing.B) {
	once(b, func() { benchGatewayScale(b, startSite(b)) })
}

// cpuTicks is this process's user+system CPU time in clock ticks.
func cpuTicks() int64 {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
	u, _ := strconv.ParseInt(f[11], 10, 64)                  // 14 utime
	k, _ := strconv.ParseInt(f[12], 10, 64)                  // 15 stime
	return u + k
}

// settledRSS is VmRSS in KiB after the Go heap has been returned to the OS
// as far as it goes.
func settledRSS() int {
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(2 * time.Second)
	return loadtest.ProcStatusKiB("VmRSS")
}

func benchGatewayScale(b *testing.B, s *site) {
	ctx := context.Background()
	readcap := testenv.RequireCommand(b, "iscsi-readcapacity16", "libiscsi-bin")
	disks, logins, idle := 1000, 200, 10*time.Second
	if isQuick {
		disks, logins, idle = 100, 50, 5*time.Second
	}
	sec, done := section("13-scale", "13. One gateway at scale",
		fmt.Sprintf("A full bmid (in the benchmark's process, SQLite, the test Ceph cluster) exports %d thin clones of one "+
			"1 GiB sparse image (CreateDisk: clone + export each, 8 at a time; bmid opens a disk's image at its first I/O): process RSS per exported idle disk "+
			"(VmRSS after GC, before and after) and idle CPU over %s with them exported; then %d disks get an "+
			"initiator in their ACL and %d libiscsi iscsi-readcapacity16 processes log in at once (CHAP, read "+
			"capacity, log out): time until all are done. Goals ([gateways]): <= 4 MiB RSS per idle disk "+
			"(ceph-iscsi documents about 90 MB per mapped image), 200 logins <= 5 s.", disks, idle, logins, logins))
	defer done()
	s.source(b, "scaleimg", 1, 0)
	rss0 := settledRSS()
	names := make([]string, disks)
	for i := range names {
		names[i] = fmt.Sprintf("sc%04d", i)
	}
	parallel := func(n int, f func(i int) error) (time.Duration, int) {
		var errs atomic.Int64
		var next atomic.Int64
		var wg sync.WaitGroup
		t0 := time.Now()
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					if err := f(i); err != nil {
						if errs.Add(1) == 1 {
							b.Logf("%v", err)
						}
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(t0), int(errs.Load())
	}
	took, failed := parallel(disks, func(i int) error {
		_, err := s.svc.CreateDisk(ctx, alice, "tenant-a", "scaleimg", names[i])
		return err
	})
	defer func() {
		if took, failed := parallel(disks, func(i int) error { return s.svc.DeleteDisk(ctx, alice, "tenant-a", names[i]) }); failed > 0 {
			b.Errorf("%d of %d disks not deleted (%s)", failed, disks, took)
		}
	}()
	rss1 := settledRSS()
	exported := disks - failed
	perDisk := float64(rss1-rss0) / float64(max(exported, 1)) / 1024
	sec.Add(Row{Case: fmt.Sprintf("%d disks", disks), Subject: "export (create) all", Unit: "s", N: 1,
		Median: took.Seconds(), P95: took.Seconds(), Min: took.Seconds(), Max: took.Seconds(), Errors: failed})
	sec.Add(Row{Case: fmt.Sprintf("%d disks", disks), Subject: "RSS per exported idle disk", Unit: "MiB", N: exported,
		Median: perDisk, P95: perDisk, Min: perDisk, Max: perDisk,
		Extra: map[string]float64{"rss_before_mib": float64(rss0) / 1024, "rss_after_mib": float64(rss1) / 1024}})
	t0, c0 := time.Now(), cpuTicks()
	time.Sleep(idle)
	cpu := float64(cpuTicks()-c0) / 100 / time.Since(t0).Seconds() * 100 // CLK_TCK is 100 on Linux
	sec.Add(Row{Case: fmt.Sprintf("%d disks", disks), Subject: "idle CPU (% of one core)", Unit: "%", N: 1, Median: cpu, P95: cpu, Min: cpu, Max: cpu})

	// The login storm.
	admin, err := client.New(s.api, "hiladmin", logging.Secret("admin-secret"))
	if err != nil {
		b.Fatal(err)
	}
	user, err := client.New(s.api, alice.User, alice.Password)
	if err != nil {
		b.Fatal(err)
	}
	logins = min(logins, exported)
	urls := make([]string, logins)
	inits := make([]string, logins)
	if _, failed := parallel(logins, func(i int) error {
		inits[i] = fmt.Sprintf("iqn.2026-11.org.bmi.bench:scale.%d", i)
		if _, err := user.ChangeACL(ctx, "tenant-a", names[i], api.ACLChange{Add: []string{inits[i]}}); err != nil {
			return err
		}
		cr, err := admin.Credentials(ctx, "tenant-a", names[i])
		if err != nil {
			return err
		}
		urls[i] = fmt.Sprintf("iscsi://%s%%%s@%s/%s/0", cr.CHAPUser, cr.CHAPSecret, s.cfg.ISCSI.Listen[0], cr.IQN)
		return nil
	}); failed > 0 {
		b.Fatalf("%d ACLs or credentials failed", failed)
	}
	var wg sync.WaitGroup
	var lfail atomic.Int64
	per := make([]float64, logins)
	start := make(chan struct{})
	for i := range logins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t := time.Now()
			out, err := exec.Command(readcap, "-i", inits[i], urls[i]).CombinedOutput()
			per[i] = float64(time.Since(t).Milliseconds())
			if err != nil || !strings.Contains(string(out), "1073741824") {
				if lfail.Add(1) == 1 {
					b.Logf("login %d: %v\n%s", i, err, out)
				}
			}
		}()
	}
	t0 = time.Now()
	close(start)
	wg.Wait()
	storm := time.Since(t0)
	r := Values(fmt.Sprintf("%d sessions", logins), "login, read capacity, logout (each)", "ms", per)
	r.Errors = int(lfail.Load())
	r.Extra = map[string]float64{"all_done_s": storm.Seconds()}
	sec.Add(r)
	sec.Note("%d disks exported in %.1f s (%d failed); RSS %.0f -> %.0f MiB: %.2f MiB per exported idle disk; idle CPU %.1f%% of one core",
		disks, took.Seconds(), failed, float64(rss0)/1024, float64(rss1)/1024, perDisk, cpu)
	sec.Note("%d libiscsi sessions started at once: all logged in, answered and logged out %.2f s later (%d failed); "+
		"this includes starting %d processes on this machine's %d cores", logins, storm.Seconds(), lfail.Load(), logins, report.Machine.Cores)
	sec.Note("the RSS is the benchmark process's: bmid in-process with its test harness; the per-disk figure is the difference")
}
