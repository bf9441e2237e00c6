//go:build ceph_preview

package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/loadtest"
)

// BenchmarkBMI is `make bench`'s measurement of a full bmid on the test
// Ceph cluster, each figure next to its baseline in the same run:
// provision latency vs image size (1), the API under concurrent clients
// (6), copy/snapshot vs `rbd deep cp` (7) and 100 provisions at once vs
// as many bare clones (10). One call is the run
// (-benchtime 1x); BMI_BENCH_QUICK=1 reduces it. Nothing is asserted.
//
//	BMI_BENCH_QUICK=1 go test -tags pacific,ceph_preview -run '^$' -bench BMI -benchtime 1x ./internal/bench
func BenchmarkBMI(b *testing.B) {
	s := startSite(b)
	b.Run("1-provision", func(b *testing.B) { once(b, func() { benchProvision(b, s) }) })
	b.Run("6-api", func(b *testing.B) { once(b, func() { benchAPI(b, s) }) })
	b.Run("7-copy", func(b *testing.B) { once(b, func() { benchCopy(b, s) }) })
	b.Run("10-scale", func(b *testing.B) { once(b, func() { benchScale(b, s) }) })
}

// once runs f on the first call only: each run is one bounded measurement.
func once(b *testing.B, f func()) {
	if b.N > 1 {
		b.Skip("one bounded run is the measurement (use -benchtime 1x)")
	}
	f()
}

func benchProvision(b *testing.B, s *site) {
	ctx := context.Background()
	runs := 15
	if isQuick {
		runs = 10
	}
	sec, done := section("1-provision", "1. Provision latency vs image size",
		fmt.Sprintf("Core CreateDisk (clone + iSCSI export + records) and Provision (CreateDisk + boot config for node-01) "+
			"of 1, 10 and 100 GiB sparse images (64 MiB written) in a full bmid on the test Ceph cluster, %d runs each, "+
			"vs the bare librbd clone of the same image snapshot (baseline, go-ceph in-process).", runs))
	defer done()
	sec.Chart = &Chart{File: "provision.svg", YLabel: "median latency (ms)"}
	for _, gib := range []int{1, 10, 100} {
		name := fmt.Sprintf("img%dg", gib)
		c := fmt.Sprintf("%d GiB", gib)
		imp := s.source(b, name, gib, 64)
		sec.Note("%s: the image's import (clone + flatten of the sparse source) took %.1f s once", c, imp.Seconds())
		im, err := s.svc.ShowImage(ctx, alice, "tenant-a", name)
		if err != nil {
			b.Fatal(err)
		}
		var disk, prov, clone []time.Duration
		for i := range runs {
			t0 := time.Now()
			if _, err := s.svc.CreateDisk(ctx, alice, "tenant-a", name, "bd"); err != nil {
				b.Fatal(err)
			}
			disk = append(disk, time.Since(t0))
			if err := s.svc.DeleteDisk(ctx, alice, "tenant-a", "bd"); err != nil {
				b.Fatal(err)
			}
			t0 = time.Now()
			if _, err := s.svc.Provision(ctx, alice, "tenant-a", "node-01", name, "eth0"); err != nil {
				b.Fatal(err)
			}
			prov = append(prov, time.Since(t0))
			if err := s.svc.Deprovision(ctx, alice, "tenant-a", "node-01", ""); err != nil {
				b.Fatal(err)
			}
			kid := fmt.Sprintf("%skid%d", s.pfx, i)
			t0 = time.Now()
			if err := s.store.Clone(ctx, im.CephName, s.cfg.Ceph.Snapshot, kid); err != nil {
				b.Fatal(err)
			}
			clone = append(clone, time.Since(t0))
			if err := s.store.Remove(ctx, kid); err != nil {
				b.Fatal(err)
			}
		}
		sec.Add(Durations(c, "bmi create-disk", "ms", disk))
		sec.Add(Durations(c, "bmi provision", "ms", prov))
		sec.Add(Durations(c, "librbd clone (baseline)", "ms", clone))
	}
	for _, sub := range []string{"bmi create-disk", "bmi provision", "librbd clone (baseline)"} {
		sec.Ratio("100 GiB / 1 GiB, "+sub+" (median)", sec.Find("100 GiB", sub).Median, sec.Find("1 GiB", sub).Median)
	}
	for _, c := range []string{"1 GiB", "100 GiB"} {
		sec.Ratio(c+": bmi provision / librbd clone (median)", sec.Find(c, "bmi provision").Median, sec.Find(c, "librbd clone (baseline)").Median)
	}
}

func benchAPI(b *testing.B, s *site) {
	ctx := context.Background()
	clients, dur, base := 200, 30*time.Second, 10*time.Second
	if isQuick {
		clients, dur, base = 50, 5*time.Second, 3*time.Second
	}
	if v, err := strconv.Atoi(os.Getenv("BMI_BENCH_API_SECONDS")); err == nil && v > 0 && v < 30 {
		dur = time.Duration(v) * time.Second
	}
	sec, done := section("6-api", "6. API under concurrent clients",
		fmt.Sprintf("%d concurrent HTTP clients for %s on loopback against bmid's list/show routes as a project member "+
			"(images, image, snapshots, disks, disk, nodes; core + SQLite, auth through hil-mock with bmid's cache) "+
			"from a load generator in another process, "+
			"vs GET /healthz for %s just before (baseline: the HTTP stack alone).", clients, dur, base))
	defer done()
	sec.Chart = &Chart{File: "api.svg", YLabel: "latency (ms)", Stat: "p99"}
	s.source(b, "apiimg", 1, 0)
	if _, err := s.svc.CreateDisk(ctx, alice, "tenant-a", "apiimg", "apidisk"); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := s.svc.DeleteDisk(ctx, alice, "tenant-a", "apidisk"); err != nil {
			b.Error(err)
		}
	}()
	url := "http://" + s.cfg.API.Listen
	p := "/api/v1/projects/tenant-a"
	rss0 := loadtest.ProcStatusKiB("VmRSS")
	rb := load(b, url, clients, base, []string{"/healthz"})
	rb.Case, rb.Subject = fmt.Sprintf("%d clients", clients), "GET /healthz (baseline)"
	rl := load(b, url, clients, dur, []string{p + "/images", p + "/images/apiimg", p + "/snapshots", p + "/disks", p + "/disks/apidisk", p + "/nodes"})
	rl.Case, rl.Subject = fmt.Sprintf("%d clients", clients), "list/show"
	rl.Extra["rss_before_mib"] = float64(rss0) / 1024
	rl.Extra["rss_after_mib"] = float64(loadtest.ProcStatusKiB("VmRSS")) / 1024
	rl.Extra["rss_peak_mib"] = float64(loadtest.ProcStatusKiB("VmHWM")) / 1024
	sec.Add(rb)
	sec.Add(rl)
	sec.Ratio("list/show / healthz, p99", rl.Extra["p99"], rb.Extra["p99"])
	sec.Ratio("list/show / healthz, req/s", rl.Extra["req/s"], rb.Extra["req/s"])
	sec.Note("the %d clients run in a process of their own (client_cpu_s is its CPU time); bmid runs in the benchmark's process, so the RSS figures (VmRSS/VmHWM) are bmid's and the harness's", clients)
}

// load runs clients goroutines for d, round-robin over paths as alice; the
// row's median/p95 are latencies in ms, Extra has p99, req/s.
func load(b *testing.B, base string, clients int, d time.Duration, paths []string) Row {
	res, cpu, err := loadtest.RunProcess(context.Background(), "TestLoadChild", loadtest.Spec{Base: base, Clients: clients, Duration: d,
		User: alice.User, Password: string(alice.Password), Paths: paths})
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]float64, len(res.Latencies))
	for i, l := range res.Latencies {
		lat[i] = float64(l.Microseconds()) / 1000
	}
	r := Values("", "", "ms", lat)
	r.Errors = res.Errors
	r.Extra = map[string]float64{"p99": Percentile(lat, 0.99), "req/s": res.PerSecond(), "client_cpu_s": cpu.Seconds()}
	return r
}

// TestLoadChild is the API load generator's own process (loadtest.RunProcess);
// in a normal test run it does nothing.
func TestLoadChild(t *testing.T) {
	if _, err := loadtest.ServeChild(); err != nil {
		t.Fatal(err)
	}
}

func benchCopy(b *testing.B, s *site) {
	ctx := context.Background()
	runs := 3
	if isQuick {
		runs = 1
	}
	sec, done := section("7-copy", "7. Copy and snapshot vs rbd deep cp",
		fmt.Sprintf("A 10 GiB disk (clone of a sparse 10 GiB image with 64 MiB written) with 1 GiB written into it: "+
			"core CreateSnapshot (temporary snapshot, clone, flatten, own protected snapshot) vs `rbd deep cp --flatten` of the same disk "+
			"and vs the same recipe by hand with the rbd CLI (snap create, protect, clone, flatten); "+
			"then core CopyImage of that snapshot image (10 GiB, about 1 GiB of data) vs `rbd deep cp` of it. %d run(s) each; "+
			"throughput is the 1 GiB written over the time.", runs))
	defer done()
	sec.Chart = &Chart{File: "copy.svg", YLabel: "median time (s)"}
	s.source(b, "g10", 10, 64)
	if _, err := s.svc.CreateDisk(ctx, alice, "tenant-a", "g10", "d10"); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := s.svc.DeleteDisk(ctx, alice, "tenant-a", "d10"); err != nil {
			b.Error(err)
		}
	}()
	// the initiator's view is not needed: write the 1 GiB with no export
	if err := s.svc.UnexportDisk(ctx, alice, "tenant-a", "d10"); err != nil {
		b.Fatal(err)
	}
	disk, err := s.svc.ShowImage(ctx, alice, "tenant-a", "d10")
	if err != nil {
		b.Fatal(err)
	}
	s.rbd(b, "bench", "--io-type", "write", "--io-size", "4M", "--io-threads", "8", "--io-pattern", "seq", "--io-total", "1G", disk.CephName)
	var snap, snapCLI, snapRecipe, cp, cpCLI []time.Duration
	for i := range runs {
		t0 := time.Now()
		im, err := s.svc.CreateSnapshot(ctx, alice, "tenant-a", "d10", fmt.Sprintf("snap%d", i))
		if err != nil {
			b.Fatal(err)
		}
		snap = append(snap, time.Since(t0))
		dst := fmt.Sprintf("%scli-snap%d", s.pfx, i)
		t0 = time.Now()
		s.rbd(b, "deep", "cp", "--no-progress", "--flatten", disk.CephName, dst)
		snapCLI = append(snapCLI, time.Since(t0))
		s.rmCLICopy(b, dst)
		// BMI's recipe by hand with the rbd CLI: snapshot, protect, clone, flatten
		dst = fmt.Sprintf("%scli-recipe%d", s.pfx, i)
		t0 = time.Now()
		s.rbd(b, "snap", "create", disk.CephName+"@r")
		s.rbd(b, "snap", "protect", disk.CephName+"@r")
		s.rbd(b, "clone", disk.CephName+"@r", dst)
		s.rbd(b, "flatten", "--no-progress", dst)
		snapRecipe = append(snapRecipe, time.Since(t0))
		s.rbd(b, "rm", "--no-progress", dst)
		s.rbd(b, "snap", "unprotect", disk.CephName+"@r")
		s.rbd(b, "snap", "rm", "--no-progress", disk.CephName+"@r")

		t0 = time.Now()
		if _, err := s.svc.CopyImage(ctx, alice, "tenant-a", im.Name, "tenant-a", fmt.Sprintf("copy%d", i)); err != nil {
			b.Fatal(err)
		}
		cp = append(cp, time.Since(t0))
		dst = fmt.Sprintf("%scli-copy%d", s.pfx, i)
		t0 = time.Now()
		s.rbd(b, "deep", "cp", "--no-progress", im.CephName, dst)
		cpCLI = append(cpCLI, time.Since(t0))
		s.rmCLICopy(b, dst)
		s.removeImage(b, fmt.Sprintf("copy%d", i))
		s.removeImage(b, im.Name)
	}
	// the same subject names in both cases keep the chart's groups aligned
	rows := []Row{
		Durations("snapshot of the disk", "bmi (CreateSnapshot)", "s", snap),
		Durations("snapshot of the disk", "rbd deep cp (--flatten for the disk)", "s", snapCLI),
		Durations("snapshot of the disk", "rbd snap+protect+clone+flatten", "s", snapRecipe),
		Durations("copy of the snapshot image", "bmi (CopyImage)", "s", cp),
		Durations("copy of the snapshot image", "rbd deep cp (--flatten for the disk)", "s", cpCLI),
	}
	for _, r := range rows {
		r.Extra = map[string]float64{"MiB/s (1 GiB / median)": 1024 / r.Median}
		sec.Add(r)
	}
	sec.Ratio("CreateSnapshot / rbd deep cp --flatten (median time)", rows[0].Median, rows[1].Median)
	sec.Ratio("CreateSnapshot / rbd snap+protect+clone+flatten (median time)", rows[0].Median, rows[2].Median)
	sec.Ratio("CopyImage / rbd deep cp (median time)", rows[3].Median, rows[4].Median)
	sec.Note("rbd deep cp also copies the source's snapshots (the snapshot image's protected %q); BMI copies the head and takes its own snapshot", s.cfg.Ceph.Snapshot)
}
