//go:build ceph_preview

package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/lab"
)

// stormSizes are the boot storms of the full run; the lab is built with
// the largest that fits in memory (stormFits).
var stormSizes = []int{1, 4, 8, 16, 24}

// nodeMemMiB is what one lab machine is reckoned to take: its 192 MiB of
// guest memory plus QEMU and its TCG translation buffers (about 60-130
// MiB measured; the storm rows carry the measured peak).
const nodeMemMiB = 192 + 160

// reserveMiB is left for Ceph, bmid, libvirtd and everything else.
const reserveMiB = 2048

// stormFits says whether n machines fit in the memory available now
// (/proc/meminfo MemAvailable; running machines already counted there).
func stormFits(n int) (ok bool, need, avail int) {
	avail = memAvailableMiB()
	need = n*nodeMemMiB + reserveMiB
	return avail >= need, need, avail
}

// memAvailableMiB reads MemAvailable (0 if unknown).
func memAvailableMiB() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemAvailable:" {
			kib, _ := strconv.Atoi(f[1])
			return kib >> 10
		}
	}
	return 0
}

// stormTimeout bounds each node's boot in a storm of n: n TCG machines
// share the cores, so a boot takes up to about n/cores times longer.
func stormTimeout(n int) time.Duration {
	return max(bootTimeout, time.Duration(n)*40*time.Second)
}

// benchStorm boots storms of each size in sizes (skipping, with a note,
// any size above the lab's machines or beyond the memory available).
func benchStorm(b *testing.B, bl *benchLab, sizes []int, skipped []string) {
	ctx := context.Background()
	sec, done := section("4-storm", "4. Boot storm",
		"N lab machines (TCG, 1 vCPU, 192 MiB each) provisioned through bmid's API and power-cycled through hil-mock at once; time from the first "+
			"provision call until every node printed its marker, and failures; baseline: N x the CPU time of the single-node "+
			"boot's QEMU process / cores (the time if the boots only competed for the CPUs).")
	defer done()
	sec.Chart = &Chart{File: "storm.svg", YLabel: "seconds", Unit: "s"}
	for _, s := range skipped {
		sec.Note("%s", s)
	}
	// bmid attaches each node to its project's provisioning network at
	// provision
	var singleCPU time.Duration
	for _, n := range sizes {
		if n > len(bl.l.Nodes) {
			sec.Note("%d nodes not run: the lab has %d machines", n, len(bl.l.Nodes))
			continue
		}
		if ok, need, avail := stormFits(n); !ok {
			sec.Note("%d nodes not run: they need about %d MiB (%d x %d MiB per TCG machine + %d MiB reserve), %d MiB available",
				n, need, n, nodeMemMiB, reserveMiB, avail)
			fmt.Printf("storm %d: skipped, %d MiB needed, %d MiB available\n", n, need, avail)
			continue
		}
		var nodes []lab.Node
		for i := 1; i <= n; i++ {
			nd, err := bl.l.Node(fmt.Sprintf("node-%02d", i))
			if err != nil {
				b.Fatal(err)
			}
			nodes = append(nodes, nd)
		}
		stopRSS := rssWatch(bl.l.Name + "-node-")
		cpu0 := serverCPU(bl.l.Dir)
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, n)
		rs := make([]bootResult, n)
		for i, nd := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rs[i], errs[i] = bl.netboot(ctx, nd, lab.GoldenImage, stormTimeout(n))
			}()
		}
		wg.Wait()
		all := time.Since(t0)
		cpu1 := serverCPU(bl.l.Dir)
		peakRSS := stopRSS()
		failed := 0
		var boots []time.Duration
		for i, err := range errs {
			if err != nil {
				failed++
				first, _, _ := strings.Cut(err.Error(), "\n")
				fmt.Printf("storm %d: %s: %v\n", n, nodes[i].Name, err)
				sec.Note("%d nodes: %s failed: %s", n, nodes[i].Name, first)
				_, _ = bl.call("POST", bl.hil+"/node/"+nodes[i].Name+"/power_off", "", 200)
			} else {
				boots = append(boots, rs[i].boot)
			}
			if err := bl.deprovision(nodes[i]); err != nil {
				fmt.Printf("storm %d: deprovision %s: %v\n", n, nodes[i].Name, err)
				sec.Note("%d nodes: deprovision %s: %v", n, nodes[i].Name, err)
			}
		}
		if n == 1 && failed == 0 {
			singleCPU = rs[0].cpu
		}
		c := fmt.Sprintf("%d nodes", n)
		if n == 1 {
			c = "1 node"
		}
		r := Durations(c, "BMI storm: all booted", "s", []time.Duration{all})
		r.Errors = failed
		r.Extra = map[string]float64{"failed": float64(failed), "qemu_rss_peak_mib": float64(peakRSS)}
		sec.Add(r)
		pn := Durations(c, "per node: power cycle to marker", "s", boots)
		pn.Errors = failed
		sec.Add(pn)
		// Where the serving side's CPU goes: bmid (DHCP, TFTP, boot HTTP,
		// iSCSI, API) and the lab's Ceph daemons, per node booted, and
		// their share of the machine over the storm.
		var qemuCPU time.Duration
		for _, r := range rs {
			qemuCPU += r.cpu
		}
		extra := map[string]float64{}
		machine := all.Seconds() * float64(report.Machine.Cores)
		var serving time.Duration
		for _, k := range []string{"bmid", "ceph-osd", "ceph-mon", "ceph-mgr"} {
			d := cpu1[k] - cpu0[k]
			serving += d
			extra[k+"_ms"] = float64(d.Milliseconds()) / float64(n)
			extra[k+"_share"] = d.Seconds() / machine
		}
		split := Values(c, "serving CPU per node boot (bmid + Ceph daemons)", "ms", []float64{float64(serving.Milliseconds()) / float64(n)})
		split.Extra = extra
		split.Extra["qemu_ms"] = float64(qemuCPU.Milliseconds()) / float64(n)
		split.Extra["qemu_share"] = qemuCPU.Seconds() / machine
		sec.Add(split)
		fmt.Printf("storm %d: CPU per node boot: bmid %.0f ms, ceph-osd %.0f ms, qemu %.0f ms; share of the machine: bmid %.2f, osd %.2f, qemu %.2f\n",
			n, split.Extra["bmid_ms"], split.Extra["ceph-osd_ms"], split.Extra["qemu_ms"], split.Extra["bmid_share"], split.Extra["ceph-osd_share"], split.Extra["qemu_share"])
		if singleCPU > 0 {
			base := time.Duration(float64(n) * float64(singleCPU) / float64(report.Machine.Cores))
			sec.Add(Durations(c, "N x single-boot CPU / cores (baseline)", "s", []time.Duration{base}))
			sec.Ratio(c+": time to all booted / (N x single-boot CPU time / cores)", all.Seconds(), base.Seconds())
		}
		sec.Ratio(c+": failed / N", float64(failed), float64(n))
		fmt.Printf("storm %d: all done in %.1f s, %d failed, per-node boot median %.1f s, QEMU RSS peak %d MiB, single-boot CPU %.1f s\n",
			n, all.Seconds(), failed, pn.Median, peakRSS, singleCPU.Seconds())
	}
	sec.Note("single-boot CPU time (the 1-node storm's QEMU process, power cycle to marker): %.2f s; %d cores", singleCPU.Seconds(), report.Machine.Cores)
	sec.Note("each machine has 1 vCPU and TCG runs it on one host thread, so with fewer nodes than cores the baseline cannot be reached (1 node: at best its own wall time)")
	sec.Note("a failed node is one that did not print its marker within its timeout (max(%v, N x 40 s)) or printed BMI-LAB-FAILED; its time still counts in \"all booted\" (the storm ends when every node has booted or failed)", bootTimeout)
	sec.Note("qemu_rss_peak_mib: the largest sum of the storm's QEMU processes' resident memory, sampled every 0.5 s")
	sec.Note("serving CPU per node boot: the CPU time of bmid and of the lab's Ceph daemons over the storm, divided by N, each one's in *_ms (qemu_ms: the QEMU processes'); *_share is that CPU over the storm's wall time x cores")
}

// serverCPU sums the CPU time (user + system) of the serving processes of
// the lab in dir, by program: bmid and the lab's Ceph daemons (their
// command lines name a file under dir).
func serverCPU(dir string) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, k := range []string{"bmid", "ceph-osd", "ceph-mon", "ceph-mgr"} {
		for _, pid := range qemuPIDs(dir) {
			cmd, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
			if err != nil {
				continue
			}
			args := bytes.Split(cmd, []byte{0})
			if filepath.Base(string(args[0])) != k {
				continue
			}
			if d, ok := procCPU(pid); ok {
				out[k] += d
			}
		}
	}
	return out
}

// rssWatch samples the summed VmRSS of the QEMU processes whose guest name
// starts with prefix every 500 ms until stopped; stop returns the peak in
// MiB.
func rssWatch(prefix string) (stop func() int) {
	done := make(chan struct{})
	res := make(chan int, 1)
	go func() {
		peak := 0
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			sum := 0
			for _, pid := range qemuPIDs("guest=" + prefix) {
				sum += procStatusField(pid, "VmRSS:")
			}
			peak = max(peak, sum>>10)
			select {
			case <-done:
				res <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() int { close(done); return <-res }
}

// procStatusField is a kB field of /proc/<pid>/status (0 if unknown).
func procStatusField(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return 0
}

// cpuWatch samples the CPU time (user + system) of the QEMU process of a
// lab domain every 100 ms until stopped, across restarts of the process
// (a power cycle starts a new one): stop returns the sum over processes.
func cpuWatch(domain string) (stop func() time.Duration) {
	done := make(chan struct{})
	res := make(chan time.Duration, 1)
	go func() {
		last := map[int]time.Duration{}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			for _, pid := range qemuPIDs("guest=" + domain + ",") {
				if d, ok := procCPU(pid); ok && d > last[pid] {
					last[pid] = d
				}
			}
			select {
			case <-done:
				var sum time.Duration
				for _, d := range last {
					sum += d
				}
				res <- sum
				return
			case <-t.C:
			}
		}
	}()
	return func() time.Duration { close(done); return <-res }
}

// qemuPIDs finds the QEMU processes libvirt started whose command line
// holds needle: "guest=<domain>," for one domain ("-name
// guest=<domain>,..."), "guest=<prefix>" for several.
func qemuPIDs(needle string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmd, []byte(needle)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procCPU is utime + stime of pid (clock ticks of 10 ms, Linux's USER_HZ).
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, true
}
