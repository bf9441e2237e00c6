//go:build ceph_preview

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/image"
	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/logging"
)

// bootTimeout bounds one boot to its marker (TCG on a shared machine).
const bootTimeout = 10 * time.Minute

// BenchmarkBoot measures boots of the lab's golden image in the lab's TCG
// machines (lab.Up: its own Ceph, hil-mock and bmid in a network
// namespace): BMI (provision + PXE/iPXE/sanboot over iSCSI) vs the
// install-to-disk path (download the image from bmid, write it to the
// machine's local disk, boot it) (2); netboot vs local boot of the same
// machine definition with the per-step console timeline (3); and, in the
// full run, boot storms of 1, 2 and 4 nodes (4). Root only.
func BenchmarkBoot(b *testing.B) {
	testenv.RequireRoot(b)
	for cmd, pkg := range lab.Commands {
		testenv.RequireCommand(b, cmd, pkg)
	}
	for name, pkg := range image.Tools {
		testenv.RequireCommand(b, name, pkg)
	}
	runs, nodes := 3, 4
	if isQuick {
		runs, nodes = 1, 1
	}
	bl := upLab(b, nodes)
	b.Run("2-3-netboot-vs-local", func(b *testing.B) { once(b, func() { benchNetVsLocal(b, bl, runs) }) })
	if nodes > 1 {
		b.Run("4-storm", func(b *testing.B) { once(b, func() { benchStorm(b, bl, []int{1, 2, 4}) }) })
	}
}

// benchLab is a running lab and how to talk to it.
type benchLab struct {
	l        *lab.Lab
	api, hil string
	user, pw string
	adminPW  string
	dir      string
	log      *os.File
}

func upLab(b *testing.B, nodes int) *benchLab {
	b.Helper()
	ctx := context.Background()
	bin := os.Getenv("BMI_BENCH_BIN")
	if bin == "" {
		bin = b.TempDir()
		out, err := exec.Command("go", "build", "-tags", "pacific,ceph_preview", "-o", bin+"/",
			filepath.Join(repoRoot(), "cmd", "bmid"), filepath.Join(repoRoot(), "cmd", "bmi-lab")).CombinedOutput()
		if err != nil {
			b.Fatalf("go build bmid bmi-lab: %v\n%s", err, out)
		}
	}
	// a fixed directory, so that a lab left by a killed run is taken down
	// first (a lab name belongs to one directory while it exists)
	dir := filepath.Join(os.TempDir(), "bmi-bench-lab")
	logf, err := os.Create(filepath.Join(runDirOrTemp(b), "lab.log"))
	if err != nil {
		b.Fatal(err)
	}
	o := lab.UpOptions{Options: lab.Options{Name: "bench", Dir: dir, Nodes: nodes}, Bmid: filepath.Join(bin, "bmid"),
		BmiLab: filepath.Join(bin, "bmi-lab"), ImageCache: filepath.Join(os.TempDir(), "bmi-lab-test-images")}
	logger, err := logging.New(logf, logging.Options{Format: "text"})
	if err != nil {
		b.Fatal(err)
	}
	if stale, err := lab.New(o.Name, dir, logger); err == nil {
		_ = stale.Down(ctx, false)
	}
	t0 := time.Now()
	l, err := lab.Up(ctx, o, logger)
	b.Cleanup(func() {
		if l != nil {
			if err := l.Down(context.Background(), false); err != nil {
				b.Errorf("lab down: %v", err)
			}
		}
		logf.Close()
	})
	if err != nil {
		b.Fatalf("lab up: %v (log: %s)", err, logf.Name())
	}
	fmt.Printf("lab up with %d node(s) in %.0f s\n", nodes, time.Since(t0).Seconds())
	cred, err := l.Credentials()
	if err != nil {
		b.Fatal(err)
	}
	return &benchLab{l: l, api: l.APIURL() + "/api/v1/projects/" + lab.Project, hil: l.HILURL() + "/v0",
		user: lab.HILUser, pw: cred.HILUser, adminPW: cred.HILAdmin, dir: dir, log: logf}
}

func runDirOrTemp(b *testing.B) string {
	if err := os.MkdirAll(runDir, 0o755); err == nil {
		return runDir
	}
	return b.TempDir()
}

// call sends a JSON request as the lab user and decodes the answer.
func (bl *benchLab) call(method, url, body string, want int) (map[string]any, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(bl.user, bl.pw)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: HTTP %d, want %d: %s", method, url, resp.StatusCode, want, raw)
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m, nil
}

// connect puts node's NIC on the provisioning network through hil-mock.
func (bl *benchLab) connect(node string) error {
	m, err := bl.call("POST", bl.hil+"/node/"+node+"/nic/eth0/connect_network", `{"network": "`+lab.ProvisioningNetwork+`"}`, 202)
	if err != nil {
		return err
	}
	id, _ := m["status_id"].(string)
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		st, err := bl.call("GET", bl.hil+"/networking_action/"+id, "", 200)
		if err != nil {
			return err
		}
		switch st["status"] {
		case "DONE":
			return nil
		case "ERROR":
			return fmt.Errorf("connect %s: %v", node, st)
		}
	}
	return fmt.Errorf("connect %s: not done within 2 min", node)
}

// bootResult is one boot to the marker.
type bootResult struct {
	prepare time.Duration // provision, or download + write the local disk
	boot    time.Duration // power on to marker
	tl      vm.Timeline
	mode    string
	cpu     time.Duration // the QEMU process's CPU time, power on to marker
}

// watch follows node's console from now while start powers it on; it
// returns the timeline to the marker and the marker's mode, and stores the
// QEMU process's CPU time over the boot in cpu.
func (bl *benchLab) watch(ctx context.Context, node lab.Node, start func() error, cpu *time.Duration) (time.Duration, vm.Timeline, string, error) {
	con := vm.Console{Path: node.Serial}
	stop := cpuWatch(node.Domain)
	defer func() { *cpu = stop() }()
	from := con.Offset()
	t0 := time.Now()
	if err := start(); err != nil {
		return 0, nil, "", err
	}
	tl, err := con.Timeline(ctx, from, t0, vm.BootMilestones, bootTimeout)
	if err != nil {
		tail, _ := con.Tail(2000)
		return 0, tl, "", fmt.Errorf("%s: %w; console tail:\n%s", node.Name, err, tail)
	}
	d := time.Since(t0)
	if len(tl) > 0 {
		d = tl[len(tl)-1].At
	}
	mk, err := con.WaitFor(ctx, from, vm.BootedRE, time.Second)
	if err != nil {
		return d, tl, "", err
	}
	return d, tl, mk.Groups[2], nil
}

// netboot provisions node through bmid's API and power-cycles it through
// hil-mock; it leaves the node provisioned (deprovision after).
func (bl *benchLab) netboot(ctx context.Context, node lab.Node) (bootResult, error) {
	t0 := time.Now()
	if _, err := bl.call("POST", bl.api+"/nodes/"+node.Name+"/provision", `{"image": "`+lab.GoldenImage+`", "nic": "eth0"}`, 201); err != nil {
		return bootResult{}, err
	}
	r := bootResult{prepare: time.Since(t0)}
	var err error
	r.boot, r.tl, r.mode, err = bl.watch(ctx, node, func() error {
		_, err := bl.call("POST", bl.hil+"/node/"+node.Name+"/power_cycle", "", 200)
		return err
	}, &r.cpu)
	return r, err
}

func (bl *benchLab) deprovision(node lab.Node) error {
	_, err := bl.call("DELETE", bl.api+"/nodes/"+node.Name+"/provision", "", 204)
	return err
}

// localBoot is the install-to-disk path on the same machine: download
// the image from bmid (as an installer fetches it over the network),
// write it as the machine's local disk, redefine the machine with that
// disk and boot order disk, power it on. The machine is restored to its
// diskless definition afterwards.
func (bl *benchLab) localBoot(ctx context.Context, m *vm.Machines, node lab.Node, i int) (bootResult, error) {
	_ = m.Off(ctx, node.Domain)
	t0 := time.Now()
	raw := filepath.Join(bl.dir, fmt.Sprintf("install-%s-%d.raw", node.Name, i))
	if err := bl.download(raw); err != nil {
		return bootResult{}, err
	}
	disk := strings.TrimSuffix(raw, ".raw") + ".qcow2"
	if err := vm.NewOverlay(ctx, raw, disk); err != nil {
		return bootResult{}, err
	}
	r := bootResult{prepare: time.Since(t0)}
	spec := vm.Spec{Name: node.Domain, Host: node.Name, MAC: node.MAC, Tap: node.Tap, Serial: node.Serial}
	withDisk := spec
	withDisk.Disk = disk
	if err := m.Define(ctx, withDisk, vm.BootDisk); err != nil {
		return r, err
	}
	defer func() {
		_ = m.Off(ctx, node.Domain)
		_ = m.Define(ctx, spec, vm.BootNone)
		os.Remove(disk)
		os.Remove(raw)
	}()
	var err error
	r.boot, r.tl, r.mode, err = bl.watch(ctx, node, func() error { return m.On(ctx, node.Domain) }, &r.cpu)
	return r, err
}

func (bl *benchLab) download(path string) error {
	req, err := http.NewRequest("GET", bl.api+"/images/"+lab.GoldenImage+"/data", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(bl.user, bl.pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("download golden: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func benchNetVsLocal(b *testing.B, bl *benchLab, runs int) {
	ctx := context.Background()
	node, err := bl.l.Node("node-01")
	if err != nil {
		b.Fatal(err)
	}
	s2, done2 := section("2-install", "2. BMI vs install-to-disk",
		fmt.Sprintf("The lab's golden image on lab machine node-01 (TCG, 1 vCPU, 192 MiB), %d run(s) each: "+
			"(a) BMI: provision through bmid's API, power cycle through hil-mock, PXE -> iPXE -> sanboot -> kernel -> iSCSI login from the iBFT -> marker; "+
			"(b) install-to-disk: download the image from bmid's API over the lab network, write it as the machine's local disk "+
			"(raw file + qcow2 overlay), boot it from the disk to the marker.", runs))
	s3, done3 := section("3-netboot", "3. Netboot vs local boot",
		fmt.Sprintf("The same machine definition (node-01, TCG) booting the same image to its marker: from BMI over iSCSI "+
			"vs from a local virtio disk; seconds from power on, per console milestone (median of %d).", runs))
	m := vm.NewMachines(bl.l.LibvirtSocket, logging.Discard())
	defer m.Close()
	if err := bl.connect(node.Name); err != nil {
		b.Fatal(err)
	}
	var nets, locs []bootResult
	for i := range runs {
		r, err := bl.netboot(ctx, node)
		if err != nil {
			b.Fatal(err)
		}
		if err := bl.deprovision(node); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("netboot %d: provision %.1f s, boot %.1f s (%s): %v\n", i+1, r.prepare.Seconds(), r.boot.Seconds(), r.mode, r.tl)
		nets = append(nets, r)
		r, err = bl.localBoot(ctx, m, node, i)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("local boot %d: install %.1f s, boot %.1f s (%s): %v\n", i+1, r.prepare.Seconds(), r.boot.Seconds(), r.mode, r.tl)
		locs = append(locs, r)
	}
	pick := func(rs []bootResult, f func(bootResult) time.Duration) []time.Duration {
		var out []time.Duration
		for _, r := range rs {
			out = append(out, f(r))
		}
		return out
	}
	prep := func(r bootResult) time.Duration { return r.prepare }
	boot := func(r bootResult) time.Duration { return r.boot }
	total := func(r bootResult) time.Duration { return r.prepare + r.boot }
	for _, x := range []struct {
		c string
		f func(bootResult) time.Duration
	}{{"prepare (provision / install)", prep}, {"boot to marker", boot}, {"total", total}} {
		s2.Add(Durations(x.c, "(a) BMI", "s", pick(nets, x.f)))
		s2.Add(Durations(x.c, "(b) install-to-disk", "s", pick(locs, x.f)))
	}
	s2.Chart = &Chart{File: "install.svg", YLabel: "median time (s)"}
	s2.Ratio("(a) BMI / (b) install-to-disk, total (median)", s2.Find("total", "(a) BMI").Median, s2.Find("total", "(b) install-to-disk").Median)
	s2.Note("the golden image is small (a 32 MiB disk with a busybox initramfs), so the install's copy is short; a real OS image of GiBs makes (b)'s copy grow with the image while (a) does not (section 1)")
	s2.Note("the install step runs on the host (HTTP download from bmid into the disk file), not inside the guest as an installer would under TCG")
	done2()

	for _, ms := range vm.BootMilestones {
		if v := at(nets, ms.Name); len(v) > 0 {
			s3.Add(Durations(ms.Name, "netboot (iSCSI)", "s", v))
		}
		if v := at(locs, ms.Name); len(v) > 0 {
			s3.Add(Durations(ms.Name, "local disk", "s", v))
		}
	}
	cpu := func(r bootResult) time.Duration { return r.cpu }
	s3.Add(Durations("QEMU CPU time", "netboot (iSCSI)", "s", pick(nets, cpu)))
	s3.Add(Durations("QEMU CPU time", "local disk", "s", pick(locs, cpu)))
	s3.Chart = &Chart{File: "netboot.svg", YLabel: "seconds from power on (median)"}
	if n, l := s3.Find("marker", "netboot (iSCSI)"), s3.Find("marker", "local disk"); n != nil && l != nil {
		s3.Ratio("netboot / local boot, power on to marker (median)", n.Median, l.Median)
	}
	if n, l := s3.Find("bootloader", "netboot (iSCSI)"), s3.Find("bootloader", "local disk"); n != nil && l != nil {
		s3.Ratio("netboot / local boot, power on to bootloader (median)", n.Median, l.Median)
	}
	s3.Note("milestones are console patterns (lab/vm BootMilestones) time-stamped to within the 100 ms poll; modes seen: netboot %q, local %q", nets[0].mode, locs[0].mode)
	done3()
}

// at collects a milestone's time over boots.
func at(rs []bootResult, name string) []time.Duration {
	var out []time.Duration
	for _, r := range rs {
		for _, s := range r.tl {
			if s.Name == name {
				out = append(out, s.At)
			}
		}
	}
	return out
}

func benchStorm(b *testing.B, bl *benchLab, sizes []int) {
	ctx := context.Background()
	sec, done := section("4-storm", "4. Boot storm",
		"N lab machines (TCG, 1 vCPU each) provisioned through bmid's API and power-cycled at once; time from the first "+
			"provision call until every node printed its marker, and failures; baseline: N x the CPU time of the single-node "+
			"boot's QEMU process / cores (the time if the boots only competed for the CPUs).")
	defer done()
	sec.Chart = &Chart{File: "storm.svg", YLabel: "time to all booted (s)"}
	for i := 2; i <= sizes[len(sizes)-1]; i++ { // node-01 is connected already
		if err := bl.connect(fmt.Sprintf("node-%02d", i)); err != nil {
			b.Fatal(err)
		}
	}
	var singleCPU time.Duration
	for _, n := range sizes {
		var nodes []lab.Node
		for i := 1; i <= n; i++ {
			nd, err := bl.l.Node(fmt.Sprintf("node-%02d", i))
			if err != nil {
				b.Fatal(err)
			}
			nodes = append(nodes, nd)
		}
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, n)
		rs := make([]bootResult, n)
		for i, nd := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rs[i], errs[i] = bl.netboot(ctx, nd)
			}()
		}
		wg.Wait()
		all := time.Since(t0)
		failed := 0
		for i, err := range errs {
			if err != nil {
				failed++
				fmt.Printf("storm %d: %s: %v\n", n, nodes[i].Name, err)
			}
			if err := bl.deprovision(nodes[i]); err != nil {
				fmt.Printf("storm %d: deprovision %s: %v\n", n, nodes[i].Name, err)
			}
		}
		if n == 1 {
			singleCPU = rs[0].cpu
		}
		c := fmt.Sprintf("%d nodes", n)
		r := Durations(c, "BMI storm: all booted", "s", []time.Duration{all})
		r.Errors = failed
		sec.Add(r)
		base := time.Duration(float64(n) * float64(singleCPU) / float64(report.Machine.Cores))
		sec.Add(Durations(c, "N x single-boot CPU / cores (baseline)", "s", []time.Duration{base}))
		sec.Ratio(fmt.Sprintf("%d nodes: time to all booted / (N x single-boot CPU time / cores)", n), all.Seconds(), base.Seconds())
		fmt.Printf("storm %d: all booted in %.1f s, %d failed (baseline %.1f s)\n", n, all.Seconds(), failed, base.Seconds())
	}
	sec.Note("each machine has 1 vCPU and TCG runs it on one host thread, so with fewer nodes than cores the baseline cannot be reached (1 node: at best its own wall time)")
	sec.Note("16 and 24 nodes are not run: %d cores shared with other work; the lab's machines are TCG", report.Machine.Cores)
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
			for _, pid := range qemuPIDs(domain) {
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

// qemuPIDs finds the QEMU processes libvirt started for domain
// (command line "-name guest=<domain>,...").
func qemuPIDs(domain string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmd, []byte("guest="+domain+",")) {
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
