//go:build ceph_preview

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
// install-to-disk path (an installer netbooted by an install server
// writes the image to the machine's local disk, which then boots) (2);
// netboot vs local boot of the same machine with the per-step console
// timeline (3); and, in the full run, boot storms of 1, 4, 8, 16 and 24
// nodes (4; 24 only if memory allows). Root only.
func BenchmarkBoot(b *testing.B) {
	testenv.RequireRoot(b)
	for cmd, pkg := range lab.Commands {
		testenv.RequireCommand(b, cmd, pkg)
	}
	for name, pkg := range image.Tools {
		testenv.RequireCommand(b, name, pkg)
	}
	runs, nodes := 3, stormSizes[len(stormSizes)-1]
	var skipped []string
	if isQuick {
		runs, nodes = 1, 1
	} else {
		// the lab holds as many machines as the largest storm that fits
		for nodes > 1 {
			ok, need, avail := stormFits(nodes)
			if ok {
				break
			}
			skipped = append(skipped, fmt.Sprintf("%d nodes not run: they need about %d MiB (%d x %d MiB per TCG machine + %d MiB reserve), %d MiB were available when the lab was built",
				nodes, need, nodes, nodeMemMiB, reserveMiB, avail))
			nodes = stormSizes[max(0, indexOf(stormSizes, nodes)-1)]
		}
	}
	bl := upLab(b, nodes)
	b.Run("2-3-netboot-vs-local", func(b *testing.B) { once(b, func() { benchNetVsLocal(b, bl, runs) }) })
	b.Run("9-origstack", func(b *testing.B) { once(b, func() { benchOrigStack(b, bl, runs) }) })
	if !isQuick {
		var sizes []int
		for _, n := range stormSizes {
			if n <= nodes {
				sizes = append(sizes, n)
			}
		}
		b.Run("4-storm", func(b *testing.B) { once(b, func() { benchStorm(b, bl, sizes, skipped) }) })
	}
}

func indexOf(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return 0
}

// benchLab is a running lab and how to talk to it.
type benchLab struct {
	l        *lab.Lab
	api, hil string
	user, pw string
	adminPW  string
	dir      string
	log      *os.File
	logger   *slog.Logger
	iocheck  string // the static bmi-lab-io of the stay-up image
}

func upLab(b *testing.B, nodes int) *benchLab {
	b.Helper()
	return upLabWith(b, lab.Options{Nodes: nodes})
}

// upLabWith is upLab with the lab's options; an empty name is "bench",
// and the directory is always the benchmark's fixed one for that name.
func upLabWith(b *testing.B, lo lab.Options) *benchLab {
	b.Helper()
	nodes := lo.Nodes
	ctx := context.Background()
	bin := os.Getenv("BMI_BENCH_BIN")
	if bin == "" {
		bin = b.TempDir()
		out, err := exec.Command("go", "build", "-tags", "pacific,ceph_preview", "-o", bin+"/",
			filepath.Join(testenv.RepoRoot(), "cmd", "bmid"), filepath.Join(testenv.RepoRoot(), "cmd", "bmi-lab")).CombinedOutput()
		if err != nil {
			b.Fatalf("go build bmid bmi-lab: %v\n%s", err, out)
		}
		build := exec.Command("go", "build", "-o", bin+"/", filepath.Join(testenv.RepoRoot(), "cmd", "bmi-lab-io"))
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("go build bmi-lab-io: %v\n%s", err, out)
		}
	}
	// a fixed directory, so that a lab left by a killed run is taken down
	// first (a lab name belongs to one directory while it exists)
	if lo.Name == "" {
		lo.Name = "bench"
	}
	dir := filepath.Join(os.TempDir(), "bmi-bench-lab")
	if lo.Name != "bench" {
		dir += "-" + lo.Name
	}
	logName := "lab.log"
	if lo.Name != "bench" {
		logName = lo.Name + "-lab.log"
	}
	logf, err := os.Create(filepath.Join(runDirOrTemp(b), logName))
	if err != nil {
		b.Fatal(err)
	}
	lo.Dir = dir
	o := lab.UpOptions{Options: lo, Bmid: filepath.Join(bin, "bmid"),
		BmiLab: filepath.Join(bin, "bmi-lab"), ImageCache: imageCache(), IOCheck: filepath.Join(bin, "bmi-lab-io")}
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
		user: lab.HILUser, pw: cred.HILUser, adminPW: cred.HILAdmin, dir: dir, log: logf, logger: logger, iocheck: o.IOCheck}
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
func (bl *benchLab) connect(node string) error { return bl.nicAction(node, "connect_network") }

// detach takes node's NIC off the provisioning network through hil-mock.
func (bl *benchLab) detach(node string) error { return bl.nicAction(node, "detach_network") }

// nicAction runs a HIL networking action on node's eth0 and the
// provisioning network and waits until it is done.
func (bl *benchLab) nicAction(node, action string) error {
	m, err := bl.call("POST", bl.hil+"/node/"+node+"/nic/eth0/"+action, `{"network": "`+lab.ProvisioningNetwork+`"}`, 202)
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
			return fmt.Errorf("%s %s: %v", action, node, st)
		}
	}
	return fmt.Errorf("%s %s: not done within 2 min", action, node)
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
// returns the timeline to the marker (within timeout) and the marker's
// mode, and stores the QEMU process's CPU time over the boot in cpu.
func (bl *benchLab) watch(ctx context.Context, node lab.Node, start func() error, cpu *time.Duration, timeout time.Duration) (time.Duration, vm.Timeline, string, error) {
	return bl.watchFor(ctx, node, vm.BootMilestones, start, cpu, timeout)
}

// watchFor is watch with the milestones to timestamp (the last one ends
// the watch).
func (bl *benchLab) watchFor(ctx context.Context, node lab.Node, ms []vm.Milestone, start func() error, cpu *time.Duration, timeout time.Duration) (time.Duration, vm.Timeline, string, error) {
	con := vm.Console{Path: node.Serial}
	stop := cpuWatch(node.Domain)
	defer func() { *cpu = stop() }()
	from := con.Offset()
	t0 := time.Now()
	if err := start(); err != nil {
		return 0, nil, "", err
	}
	tl, err := con.Timeline(ctx, from, t0, ms, timeout)
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

// netboot provisions node with the lab project's image img through bmid's API and power-cycles it through
// hil-mock; it leaves the node provisioned (deprovision after).
func (bl *benchLab) netboot(ctx context.Context, node lab.Node, img string, timeout time.Duration) (bootResult, error) {
	t0 := time.Now()
	if _, err := bl.call("POST", bl.api+"/nodes/"+node.Name+"/provision", `{"image": "`+img+`", "nic": "eth0"}`, 201); err != nil {
		return bootResult{}, err
	}
	r := bootResult{prepare: time.Since(t0)}
	var err error
	r.boot, r.tl, r.mode, err = bl.watch(ctx, node, func() error {
		_, err := bl.call("POST", bl.hil+"/node/"+node.Name+"/power_cycle", "", 200)
		return err
	}, &r.cpu, timeout)
	return r, err
}

func (bl *benchLab) deprovision(node lab.Node) error {
	_, err := bl.call("DELETE", bl.api+"/nodes/"+node.Name+"/provision", "", 204)
	return err
}

func benchNetVsLocal(b *testing.B, bl *benchLab, runs int) {
	ctx := context.Background()
	node, err := bl.l.Node("node-01")
	if err != nil {
		b.Fatal(err)
	}
	img, err := image.Build(ctx, image.Options{CacheDir: imageCache(), Log: bl.logger})
	if err != nil {
		b.Fatal(err)
	}
	is, err := startInstallServer(bl, img, bl.logger)
	if err != nil {
		b.Fatal(err)
	}
	defer is.stop()
	mib := float64(is.size) / (1 << 20)
	s2, done2 := section("2-install", "2. BMI vs install-to-disk",
		fmt.Sprintf("The lab's golden image (%.0f MiB) on lab machine node-01 (TCG, 1 vCPU, 192 MiB), %d run(s) each, seconds from the first power on: "+
			"(a) BMI: provision through bmid's API, power cycle through hil-mock, PXE -> bmid's DHCP -> iPXE -> sanboot -> kernel -> iSCSI login from the iBFT -> marker; "+
			"(b) install-to-disk, the classic path: a blank local disk of the image's size, power cycle through hil-mock (boot device PXE), "+
			"PXE -> an install server's DHCP (service/dhcpd run by the benchmark in the lab namespace) -> iPXE script -> installer kernel + initramfs over HTTP -> "+
			"the installer (busybox, in the guest) downloads the image from bmid's API (GET .../images/golden/data) onto /dev/vda and powers off -> "+
			"conductor (the benchmark, through hil-mock): boot device disk, power on -> SYSLINUX -> kernel -> marker.", mib, runs))
	s3, done3 := section("3-netboot", "3. Netboot vs local boot",
		fmt.Sprintf("The same machine (node-01, TCG) booting the same image to its marker: from BMI over iSCSI (no local disk) "+
			"vs from its local virtio disk just written by the installer of section 2 (boot device disk); seconds from power on, per console milestone (median of %d).", runs))
	m := vm.NewMachines(bl.l.LibvirtSocket, logging.Discard())
	defer m.Close()
	// bmid attaches the node to its project's provisioning network at
	// provision (the lab's bmid serves per-project networks); the
	// install-to-disk runs put it on the shared network themselves
	_ = bl.detach(node.Name)
	var nets []bootResult
	var insts []installResult
	netErrs, instErrs := 0, 0
	for i := range runs {
		r, err := bl.netboot(ctx, node, lab.GoldenImage, bootTimeout)
		if err == nil {
			fmt.Printf("netboot %d: provision %.1f s, boot %.1f s (%s): %v\n", i+1, r.prepare.Seconds(), r.boot.Seconds(), r.mode, r.tl)
			nets = append(nets, r)
		} else {
			netErrs++
			fmt.Printf("netboot %d failed: %v\n", i+1, err)
			s2.Note("(a) run %d failed: %s", i+1, errLine(err))
		}
		if err := bl.deprovision(node); err != nil {
			b.Fatal(err)
		}
		ir, err := bl.installToDisk(ctx, m, is, node, lab.GoldenImage, is.size, i)
		if err != nil {
			instErrs++
			fmt.Printf("install-to-disk %d failed: %v\n", i+1, err)
			s2.Note("(b) run %d failed: %s", i+1, errLine(err))
			continue
		}
		fmt.Printf("install-to-disk %d: installed %.1f s (download+write %.2f s in the guest), off %.1f s, on %.1f s, marker %.1f s (%s); install: %v; local boot: %v\n",
			i+1, ir.installed.Seconds(), ir.write, ir.off.Seconds(), ir.on.Seconds(), ir.total.Seconds(), ir.mode, ir.install, ir.local)
		insts = append(insts, ir)
	}
	if len(nets) == 0 || len(insts) == 0 {
		done2()
		done3()
		b.Fatalf("no successful run: (a) %d failed, (b) %d failed", netErrs, instErrs)
	}
	pickN := func(f func(bootResult) time.Duration) []time.Duration {
		var out []time.Duration
		for _, r := range nets {
			out = append(out, f(r))
		}
		return out
	}
	pickI := func(f func(installResult) time.Duration) []time.Duration {
		var out []time.Duration
		for _, r := range insts {
			out = append(out, f(r))
		}
		return out
	}
	add := func(c, subject string, d []time.Duration, errs int) {
		r := Durations(c, subject, "s", d)
		r.Errors = errs
		s2.Add(r)
	}
	add("total: to marker", "(a) BMI", pickN(func(r bootResult) time.Duration { return r.prepare + r.boot }), netErrs)
	add("total: to marker", "(b) install-to-disk", pickI(func(r installResult) time.Duration { return r.total }), instErrs)
	add("provision API call", "(a) BMI", pickN(func(r bootResult) time.Duration { return r.prepare }), netErrs)
	add("install phase: to image written", "(b) install-to-disk", pickI(func(r installResult) time.Duration { return r.installed }), instErrs)
	add("installer download + write (in the guest)", "(b) install-to-disk", pickI(func(r installResult) time.Duration {
		return time.Duration(r.write * float64(time.Second))
	}), instErrs)
	add("installed to powered on from disk (poweroff + conductor)", "(b) install-to-disk", pickI(func(r installResult) time.Duration { return r.on - r.installed }), instErrs)
	add("boot: power on to marker", "(a) BMI", pickN(func(r bootResult) time.Duration { return r.boot }), netErrs)
	add("boot: power on to marker", "(b) install-to-disk", pickI(func(r installResult) time.Duration { return r.localBoot }), instErrs)
	var rates []float64
	for _, r := range insts {
		if r.write > 0 {
			rates = append(rates, mib/r.write)
		}
	}
	rate := Values("installer download + write rate", "(b) install-to-disk", "MiB/s", rates)
	s2.Chart = &Chart{File: "install.svg", YLabel: "median time (s)"}
	a, bb := s2.Find("total: to marker", "(a) BMI").Median, s2.Find("total: to marker", "(b) install-to-disk").Median
	s2.Ratio("(a) BMI / (b) install-to-disk, total to marker (median)", a, bb)
	s2.Ratio("(b) install-to-disk / (a) BMI, total to marker (median)", bb, a)
	s2.Note("installer download + write rate (image MiB / the installer's own wget-to-/dev/vda + sync time): median %.1f MiB/s over %d run(s)", rate.Median, rate.N)
	s2.Note("(a) timeline (median, s from the power cycle): %s", medianTimeline(tls(nets, func(r bootResult) vm.Timeline { return r.tl })))
	s2.Note("(b) install phase (median, s from the power cycle): %s", medianTimeline(tlsI(insts, func(r installResult) vm.Timeline { return r.install })))
	s2.Note("(b) conductor (median, s from the power cycle): installer powered off seen at %.1f, powered on from the disk at %.1f",
		Durations("", "", "s", pickI(func(r installResult) time.Duration { return r.off })).Median,
		Durations("", "", "s", pickI(func(r installResult) time.Duration { return r.on })).Median)
	s2.Note("(b) local boot (median, s from the conductor's power on): %s", medianTimeline(tlsI(insts, func(r installResult) vm.Timeline { return r.local })))
	s2.Note("the golden image is small (%.0f MiB: a FAT partition with a kernel and a busybox initramfs), so the installer's copy is short; "+
		"a real OS image of GiBs makes (b)'s copy grow with the image (at the rate above) while (a) does not (section 1: provisioning is a clone whatever the size)", mib)
	s2.Note("(a)'s power on to marker is longer than (b)'s local boot under TCG; section 3 shows where: DHCP and iPXE before the bootloader, the kernel and initramfs loaded over iSCSI, the iSCSI login in the initramfs")
	if !isQuick {
		benchLarge(b, bl, m, is, node, s2)
	}
	done2()

	for _, ms := range vm.BootMilestones {
		if v := at(nets, ms.Name); len(v) > 0 {
			s3.Add(Durations(ms.Name, "netboot (iSCSI)", "s", v))
		}
		if v := atTL(tlsI(insts, func(r installResult) vm.Timeline { return r.local }), ms.Name); len(v) > 0 {
			s3.Add(Durations(ms.Name, "local disk", "s", v))
		}
	}
	s3.Add(Durations("QEMU CPU time", "netboot (iSCSI)", "s", pickN(func(r bootResult) time.Duration { return r.cpu })))
	s3.Add(Durations("QEMU CPU time", "local disk", "s", pickI(func(r installResult) time.Duration { return r.localCPU })))
	s3.Chart = &Chart{File: "netboot.svg", YLabel: "seconds from power on (median)"}
	if n, l := s3.Find("marker", "netboot (iSCSI)"), s3.Find("marker", "local disk"); n != nil && l != nil {
		s3.Ratio("netboot / local boot, power on to marker (median)", n.Median, l.Median)
	}
	if n, l := s3.Find("bootloader", "netboot (iSCSI)"), s3.Find("bootloader", "local disk"); n != nil && l != nil {
		s3.Ratio("netboot / local boot, power on to bootloader (median)", n.Median, l.Median)
	}
	s3.Note("milestones are console patterns (lab/vm BootMilestones) time-stamped to within the 100 ms poll; modes seen: netboot %q, local %q", nets[0].mode, insts[0].mode)
	s3.Note("netboot is a power cycle through hil-mock (boot device PXE), the local boot a power on through hil-mock with boot device disk")
	done3()
}

func errLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func imageCache() string { return filepath.Join(os.TempDir(), "bmi-lab-test-images") }

func tls(rs []bootResult, f func(bootResult) vm.Timeline) []vm.Timeline {
	var out []vm.Timeline
	for _, r := range rs {
		out = append(out, f(r))
	}
	return out
}

func tlsI(rs []installResult, f func(installResult) vm.Timeline) []vm.Timeline {
	var out []vm.Timeline
	for _, r := range rs {
		out = append(out, f(r))
	}
	return out
}

// medianTimeline renders the median time of each milestone over
// timelines, in the order of the first.
func medianTimeline(ts []vm.Timeline) string {
	if len(ts) == 0 {
		return "none"
	}
	var parts []string
	for _, s := range ts[0] {
		v := Durations("", "", "s", atTL(ts, s.Name))
		parts = append(parts, fmt.Sprintf("%s %.1f", s.Name, v.Median))
	}
	return strings.Join(parts, ", ")
}

// atTL collects a milestone's time over timelines.
func atTL(ts []vm.Timeline, name string) []time.Duration {
	var out []time.Duration
	for _, t := range ts {
		for _, s := range t {
			if s.Name == name {
				out = append(out, s.At)
			}
		}
	}
	return out
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
