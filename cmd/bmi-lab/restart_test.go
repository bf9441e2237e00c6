package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/iocheck"
	"github.com/bmi-go/bmi/lab/vm"
)

// liveNode is a stay-up node whose console the restart test reads.
type liveNode struct {
	name string
	con  vm.Console
}

// bootStayUp power-cycles every node through HIL (hil: its /v0 URL) at
// once and waits up to timeout for each to reach stay-up; it returns each
// console's offset from before its power cycle.
func bootStayUp(ctx context.Context, t *testing.T, call func(method, url, body string, want int) map[string]any, hil string, nodes []liveNode, timeout time.Duration) []int64 {
	t.Helper()
	begin := make([]int64, len(nodes))
	for i, n := range nodes {
		begin[i] = n.con.Offset()
		call("POST", hil+"/node/"+n.name+"/power_cycle", "", 200)
	}
	for i, n := range nodes {
		m, err := n.con.WaitFor(ctx, begin[i], vm.StayUpRE, timeout)
		if err != nil {
			tail, _ := n.con.Tail(4000)
			t.Fatalf("%s did not reach stay-up: %v\n%s", n.name, err, tail)
		}
		t.Logf("%s: %s", n.name, strings.TrimSpace(m.Groups[0]))
	}
	return begin
}

// checkConsoles reads each stay-up node's console from begin[i] on: no
// I/O error and no mismatch, ever; it logs what each node verified.
func checkConsoles(t *testing.T, nodes []liveNode, begin []int64) {
	t.Helper()
	for i, n := range nodes {
		b, err := n.con.Since(begin[i])
		if err != nil {
			t.Fatal(err)
		}
		lines, errs := iocheck.ParseLines(b)
		if len(errs) > 0 {
			t.Fatalf("%s: %d I/O errors or mismatches, first: %s", n.name, len(errs), errs[0])
		}
		last := lines[len(lines)-1]
		if last.Errors != 0 || last.Mismatches != 0 {
			t.Fatalf("%s: %+v", n.name, last)
		}
		t.Logf("%s: %d writes, %d reads verified, 0 errors, 0 mismatches; largest stall %d ms", n.name, last.Writes, last.Reads, last.MaxStallMs)
	}
}

// TestRestartUnderLiveNodes is [restart]'s proof on the lab: two nodes
// booted from the stay-up image (iscsid owns their sessions, bmi-lab-io
// writes and verifies blocks on their disks) ride through a graceful bmid
// restart, a SIGKILL and start, a binary upgrade, an OSD restart, one
// node's link cut for 30 s, and bmid killed while both nodes log in
// again; every console shows errors=0 mismatches=0 throughout, the I/O
// resumes after each event and bmid's log shows both sessions back; the
// stall of each event is logged. Then the nodes are deprovisioned and the
// lab taken down.
func TestRestartUnderLiveNodes(t *testing.T) {
	requireSite(t, nil)
	ctx := context.Background()
	cli, bin, dir := newSite(t, "trs")
	// The "upgrade" is another build of bmid at another path.
	upgraded := filepath.Join(t.TempDir(), "bmid-new")
	if b, err := os.ReadFile(filepath.Join(bin, "bmid")); err != nil || os.WriteFile(upgraded, b, 0o755) != nil {
		t.Fatalf("copy bmid: %v", err)
	}
	l, cred := upLab(t, cli, "trs", dir, "--nodes", "2")
	call := apiCaller(t, lab.HILUser, cred.HILUser)
	api, hil := l.APIURL()+"/api/v1/projects/"+lab.Project, l.HILURL()+"/v0"

	var nodes []liveNode
	for _, name := range []string{"node-01", "node-02"} {
		n, err := l.Node(name)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, liveNode{name: name, con: vm.Console{Path: n.Serial}})
		call("POST", api+"/nodes/"+name+"/provision", `{"image": "`+lab.StayUpImage+`", "nic": "eth0"}`, 201)
	}
	begin := bootStayUp(ctx, t, call, hil, nodes, 300*time.Second)
	// Both nodes do verified I/O before the first event.
	for _, n := range nodes {
		waitProgress(t, n, n.con.Offset(), 20, 60*time.Second)
	}

	bmidLog := filepath.Join(dir, "bmid.log")
	type event struct {
		name string
		do   func() error
		// restartsBmid: the sessions must be back on a new bmid.
		restartsBmid bool
		// killed: the new bmid found the disks' locks held by the killed
		// one and fenced it (else the nodes' writes wait out the watch).
		// An event that kills bmid before it surely wrote through the disks
		// (it opens an image at the disk's first I/O, and takes its lock at
		// the first write) leaves it false: there may be no lock to fence.
		killed bool
	}
	events := []event{
		{"graceful restart", func() error { _, err := cli("bmid", "restart"); return err }, true, false},
		{"SIGKILL and start", func() error { _, err := cli("bmid", "restart", "--kill"); return err }, true, true},
		{"binary upgrade", func() error { _, err := cli("bmid", "restart", "--binary", upgraded); return err }, true, false},
		{"OSD restart", func() error {
			c, err := l.Ceph()
			if err != nil {
				return err
			}
			return c.RestartOSD(ctx)
		}, false, false},
		{"node-01 link down 30 s", func() error {
			if err := l.SetNodeLink(ctx, "node-01", false); err != nil {
				return err
			}
			time.Sleep(30 * time.Second)
			return l.SetNodeLink(ctx, "node-01", true)
		}, false, false},
		// Both nodes log in again after a graceful restart (Time2Wait 1 s):
		// bmid is killed as soon as the first of them is back, while the
		// other one logs in, perhaps before either wrote through it.
		{"SIGKILL during a login storm", func() error {
			from := fileSize(bmidLog)
			if _, err := cli("bmid", "restart"); err != nil {
				return err
			}
			for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				b, _ := os.ReadFile(bmidLog)
				if bytes.Contains(b[min(from, int64(len(b))):], []byte(`"msg":"iscsi session started"`)) {
					break
				}
			}
			_, err := cli("bmid", "restart", "--kill")
			return err
		}, true, false},
	}
	var report strings.Builder
	for _, ev := range events {
		from := make([]int64, len(nodes))
		for i, n := range nodes {
			from[i] = n.con.Offset()
		}
		logFrom := fileSize(bmidLog)
		start := time.Now()
		if err := ev.do(); err != nil {
			t.Fatalf("%s: %v", ev.name, err)
		}
		took := time.Since(start)
		var stalls []string
		for i, n := range nodes {
			stall := waitProgress(t, n, from[i], 50, 120*time.Second)
			stalls = append(stalls, fmt.Sprintf("%s %d ms", n.name, stall))
		}
		// bmid restarted: both sessions are back on the new process.
		if ev.restartsBmid {
			b, _ := os.ReadFile(bmidLog)
			if got := bytes.Count(b[min(logFrom, int64(len(b))):], []byte(`"msg":"iscsi session started"`)); got < len(nodes) {
				t.Fatalf("%s: bmid logged %d session starts, want %d (one per node)", ev.name, got, len(nodes))
			}
		}
		if ev.killed {
			b, _ := os.ReadFile(bmidLog)
			if !bytes.Contains(b[min(logFrom, int64(len(b))):], []byte(`"msg":"fenced the previous owner of a disk's lock (blocklisted)"`)) {
				t.Fatalf("%s: the new bmid fenced no lock of the killed one", ev.name)
			}
		}
		line := fmt.Sprintf("%-30s took %5.1f s; largest I/O stall: %s", ev.name, took.Seconds(), strings.Join(stalls, ", "))
		t.Log(line)
		report.WriteString(line + "\n")
	}
	// The whole run, on both consoles: no error and no mismatch, ever.
	checkConsoles(t, nodes, begin)
	if err := os.MkdirAll("../../test-results", 0o755); err == nil {
		_ = os.WriteFile("../../test-results/restart-lab.txt", []byte(report.String()), 0o644)
	}
	for _, n := range nodes {
		call("POST", hil+"/node/"+n.name+"/power_off", "", 200)
		call("DELETE", api+"/nodes/"+n.name+"/provision", "", 204)
	}
	if _, err := cli("down"); err != nil {
		t.Fatalf("down: %v", err)
	}
	if st, err := l.Status(ctx); err != nil || !st.Empty() {
		t.Fatalf("after down: %+v, %v", st, err)
	}
}

// waitProgress waits until n's console shows, after from, at least writes
// more verified writes, with no error and no mismatch; it returns the
// largest stall seen since from, in ms.
func waitProgress(t *testing.T, n liveNode, from int64, writes int64, timeout time.Duration) int64 {
	t.Helper()
	p, err := n.con.WaitIO(context.Background(), from, writes, timeout)
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	if p.Errors != 0 || p.Mismatches != 0 {
		b, _ := n.con.Since(from)
		_, errs := iocheck.ParseLines(b)
		t.Fatalf("%s: %d I/O errors, %d mismatches: %v", n.name, p.Errors, p.Mismatches, errs)
	}
	return p.Stall.Milliseconds()
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
