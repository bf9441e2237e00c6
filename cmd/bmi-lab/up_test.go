package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/procenv"
)

// TestUpProvisionBootDown is the lab's acceptance test: `bmi-lab up` with 2
// nodes builds a site; node-01 is provisioned from the golden image through
// bmid's API, connected to the provisioning network and power cycled
// through hil-mock; it boots PXE -> iPXE -> sanboot -> kernel -> iSCSI login
// from the iBFT to its marker with its state record; a second boot finds
// the first boot's record; after deprovisioning and detaching it gets no
// DHCP answer; `bmi-lab down` leaves nothing.
func TestUpProvisionBootDown(t *testing.T) {
	requireSite(t, map[string]string{"ceph-mgr": "ceph-mgr"})
	ctx := context.Background()
	cli, bin, dir := newSite(t, "tup")

	start := time.Now()
	if out, err := cli("up", "--nodes", "2", "--cache", imageCacheDir()); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	t.Logf("bmi-lab up --nodes 2: %.1f s", time.Since(start).Seconds())
	// bmid serve re-executed itself with procenv's Go runtime settings.
	if b, err := os.ReadFile(filepath.Join(dir, "bmid.log")); err != nil || !strings.Contains(string(b), `"godebug":"`+procenv.Setting+`"`) {
		t.Fatalf("bmid.log has no go runtime line with GODEBUG %s (%v):\n%s", procenv.Setting, err, b)
	}
	start = time.Now()
	if out, err := cli("up", "--nodes", "2", "--cache", imageCacheDir()); err != nil {
		t.Fatalf("second up (idempotent): %v\n%s", err, out)
	}
	t.Logf("second bmi-lab up (all running): %.1f s", time.Since(start).Seconds())
	if out, err := cli("up", "--nodes", "3", "--cache", imageCacheDir()); err != nil {
		t.Fatalf("up with one node more: %v\n%s", err, out)
	}
	out, err := cli("env")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		env[k] = strings.Trim(v, "'")
	}
	for _, k := range []string{"BMI_URL", "HIL_USERNAME", "HIL_PASSWORD", "BMI_PROJECT", "BMI_LAB_HIL_URL"} {
		if env[k] == "" {
			t.Fatalf("env lacks %s:\n%s", k, out)
		}
	}
	// what env prints serves the CLI as it is: eval it, then bmi ls lab
	bmiBin := filepath.Join(t.TempDir(), "bmi")
	if b, err := exec.Command("go", "build", "-o", bmiBin, "../bmi").CombinedOutput(); err != nil {
		t.Fatalf("build bmi: %v\n%s", err, b)
	}
	sh := exec.Command("sh", "-c", `eval "$("$0" env --name tup --dir "$1")"; "$2" ls "$BMI_PROJECT"`, filepath.Join(bin, "bmi-lab"), dir, bmiBin)
	sh.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if b, err := sh.CombinedOutput(); err != nil || !strings.Contains(string(b), lab.GoldenImage) {
		t.Fatalf(`eval "$(bmi-lab env)"; bmi ls %s: %v, want the golden image listed:\n%s`, env["BMI_PROJECT"], err, b)
	}
	call := apiCaller(t, env["HIL_USERNAME"], env["HIL_PASSWORD"])
	api, hil, project := env["BMI_URL"]+"/api/v1/projects/"+env["BMI_PROJECT"], env["BMI_LAB_HIL_URL"]+"/v0", env["BMI_PROJECT"]
	// onNet reports whether HIL has node-01's eth0 on the provisioning
	// network: bmid attaches it at provision and detaches it at deprovision.
	onNet := func() bool {
		t.Helper()
		m := call("GET", hil+"/node/node-01", "", 200)
		nics, _ := m["nics"].([]any)
		for _, n := range nics {
			nic, _ := n.(map[string]any)
			nets, _ := nic["networks"].(map[string]any)
			for _, net := range nets {
				if nic["label"] == "eth0" && isProvisioningNetwork(net) {
					return true
				}
			}
		}
		return false
	}

	if m := call("GET", hil+"/node/node-03", "", 200); m["name"] != "node-03" {
		t.Fatalf("node added by a later up is not in hil-mock: %v", m)
	}
	l, err := lab.New("tup", dir, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	n1, err := l.Node("node-01")
	if err != nil {
		t.Fatal(err)
	}
	con := vm.Console{Path: n1.Serial}
	d := call("POST", api+"/nodes/node-01/provision", `{"image": "`+lab.GoldenImage+`", "nic": "eth0"}`, 201)
	if d["project"] != project {
		t.Fatalf("provision: %v", d)
	}
	if !onNet() {
		t.Fatal("provision did not attach node-01/eth0 to the provisioning network")
	}
	boot := func(what, wantState string) {
		t.Helper()
		from := con.Offset()
		begin := time.Now()
		call("POST", hil+"/node/node-01/power_cycle", "", 200)
		tl, err := con.Timeline(ctx, from, begin, vm.BootMilestones, 240*time.Second)
		if err != nil {
			b, _ := con.Tail(4000)
			t.Fatalf("%s: %v\nconsole tail:\n%s", what, err, b)
		}
		st, err := con.WaitFor(ctx, from, vm.StateRE, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		mk, _ := con.WaitFor(ctx, from, vm.BootedRE, time.Second)
		if mk.Groups[1] != "node-01" || mk.Groups[2] != "ibft" || st.Groups[1] != wantState {
			t.Fatalf("%s: marker %q, state %q; want node-01 ibft, state %q", what, mk.Groups[0], st.Groups[1], wantState)
		}
		t.Logf("%s: state %q; timeline from power cycle: %v", what, st.Groups[1], tl)
	}
	watch := watchBoot(t, env, "node-01") // [ops] events and /metrics of a real boot
	boot("first boot", "none")
	t.Logf("/metrics after the first boot:\n%s", watch.check(env["HIL_PASSWORD"]))
	boot("second boot", "node-01 1")

	// Deprovisioned and off the provisioning network: no DHCP answer.
	call("DELETE", api+"/nodes/node-01/provision", "", 204)
	if onNet() {
		t.Fatal("deprovision left node-01/eth0 on the provisioning network")
	}
	from := con.Offset()
	call("POST", hil+"/node/node-01/power_cycle", "", 200)
	if _, err := con.WaitFor(ctx, from, regexp.MustCompile(`No configuration methods\s+succeeded`), 180*time.Second); err != nil {
		t.Fatalf("detached node: %v", err)
	}
	if b, _ := con.Tail(con.Offset() - from); regexp.MustCompile(`net0: \d+\.\d+\.\d+\.\d+/`).Match(b) {
		t.Fatalf("detached node got a DHCP lease:\n%s", b)
	}
	call("POST", hil+"/node/node-01/power_off", "", 200)

	out, err = cli("nodes")
	if err != nil || !strings.Contains(out, "node-01 ibft") {
		t.Fatalf("nodes: %v\n%s", err, out)
	}
	t.Logf("nodes:\n%s", out)
	if _, err := cli("down"); err != nil {
		t.Fatalf("down: %v", err)
	}
	st, err := l.Status(ctx)
	if err != nil || !st.Empty() {
		t.Fatalf("after down: %+v, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ceph")); !os.IsNotExist(err) {
		t.Fatalf("ceph data left after down: %v", err)
	}
}

// buildLab builds bmid, bmi-lab and the static bmi-lab-io into a
// temporary directory and returns it.
func buildLab(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	start := time.Now()
	build := exec.Command("go", "build", "-tags", "pacific,ceph_preview", "-o", bin+"/", "../bmid", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build bmid bmi-lab: %v\n%s", err, out)
	}
	build = exec.Command("go", "build", "-o", bin+"/", "../bmi-lab-io")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build bmi-lab-io: %v\n%s", err, out)
	}
	t.Logf("built bmid, bmi-lab and bmi-lab-io in %.1f s", time.Since(start).Seconds())
	return bin
}

type exitError struct {
	err    error
	stderr string
}

func (e *exitError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }

// isProvisioningNetwork says whether the HIL network named name is one of
// the lab's provisioning networks: its project networks (bmid attaches
// each project's nodes to the project's own), or the shared one.
func isProvisioningNetwork(name any) bool {
	if name == lab.ProvisioningNetwork {
		return true
	}
	for _, n := range lab.ProjectNetworks {
		if name == n.Name {
			return true
		}
	}
	return false
}
