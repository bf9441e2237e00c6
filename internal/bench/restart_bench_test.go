//go:build ceph_preview

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/sitetest"
	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/core"
)

// restartSizes are the numbers of stay-up nodes of section 8 (full run).
var restartSizes = []int{1, 4, 8}

// BenchmarkRestart is section 8: what running nodes see while bmid
// restarts (graceful, SIGKILL + start, binary upgrade) with 1, 4 and 8
// stay-up nodes verifying their disks, tgtd restarted by its service
// commands under one such node as the anchor, and bmid's time to serve
// (start to every target exported and the portal listening) with 1, 100
// and 1 000 exported disks.
func BenchmarkRestart(b *testing.B) {
	b.Run("8a-serve", func(b *testing.B) { once(b, func() { benchTimeToServe(b) }) })
	sizes := restartSizes
	if isQuick {
		sizes = []int{1}
	}
	bl := upLab(b, sizes[len(sizes)-1])
	b.Run("8b-restart", func(b *testing.B) { once(b, func() { benchRestart(b, bl, sizes) }) })
}

// benchTimeToServe creates disks (clone + export) in an in-process bmid on
// the test Ceph cluster and restarts it at 1, 100 and 1 000 disks.
func benchTimeToServe(b *testing.B) {
	ctx := context.Background()
	counts := []int{1, 100, 1000}
	if isQuick {
		counts = []int{1, 100}
	}
	sec, done := section("8a-serve", "8a. bmid's time to serve vs exported disks",
		"From bmid's start (daemon.New, in-process: the process's exec is not counted) until its iSCSI portal accepts a connection, "+
			"which it does only once every disk of its state is exported again (opened in Ceph, its lock fenced if a dead bmid held it); "+
			"after a graceful stop, 3 restarts per size, on the test Ceph cluster.")
	defer done()
	_, _, pfx := cephtest.Pool(b)
	bmi := sitetest.Start(b, sitetest.Options{UID: strings.TrimSuffix(pfx, "-"), OpTimeout: 60 * time.Second, ReadyWait: 120 * time.Second})
	svc := func() *core.Service { return bmi.Daemon.Service() }
	if _, err := svc().CreateProject(ctx, admin, "tenant-a"); err != nil {
		b.Fatal(err)
	}
	src := pfx + "src-serve"
	if out, err := cephtest.RBD(bmi.Config.Ceph.Conf, bmi.Config.Ceph.Pool, "create", "--size", "64M", src); err != nil {
		b.Fatalf("rbd create: %v: %s", err, out)
	}
	_, err := svc().ImportImage(ctx, admin, "tenant-a", src, core.ImportOptions{Name: "serve"})
	_, _ = cephtest.RBD(bmi.Config.Ceph.Conf, bmi.Config.Ceph.Pool, "rm", "--no-progress", src)
	if err != nil {
		b.Fatal(err)
	}
	made := 0
	defer func() {
		forEach(made, 8, func(i int) error { return svc().DeleteDisk(ctx, alice, "tenant-a", fmt.Sprintf("d%04d", i)) })
		if err := svc().RemoveImage(ctx, alice, "tenant-a", "serve"); err != nil {
			b.Errorf("remove image: %v", err)
		}
	}()
	for _, n := range counts {
		t0 := time.Now()
		if err := forEach2(made, n, 8, func(i int) error {
			_, err := svc().CreateDisk(ctx, alice, "tenant-a", "serve", fmt.Sprintf("d%04d", i))
			return err
		}); err != nil {
			b.Fatal(err)
		}
		sec.Note("%d disks: creating the %d new ones (8 at a time) took %.1f s", n, n-made, time.Since(t0).Seconds())
		made = n
		var ds []time.Duration
		for range 3 {
			ds = append(ds, bmi.Restart(b))
		}
		sec.Add(Durations(fmt.Sprintf("%d disks", n), "bmid time to serve", "ms", ds))
	}
	if len(counts) == 3 {
		sec.Ratio("1000 / 1 disks, time to serve (median)", sec.Find("1000 disks", "bmid time to serve").Median, sec.Find("1 disks", "bmid time to serve").Median)
	}
}

// forEach runs f(0..n-1), par at a time, and waits; errors are ignored
// (cleanup).
func forEach(n, par int, f func(int) error) { _ = forEach2(0, n, par, f) }

// forEach2 runs f(from..to-1), par at a time, and returns the first error.
func forEach2(from, to, par int, f func(int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// stayUpNode is a lab node booted from the stay-up image.
type stayUpNode struct {
	node lab.Node
	con  vm.Console
}

// restartOutcome is what one restart did to the nodes.
type restartOutcome struct {
	stalls    []time.Duration // per node: the longest I/O since the restart began
	back      time.Duration   // restart begun -> the last node's session started again (bmid's log)
	errs, mis int64
}

// benchRestart boots stay-up nodes, 1, 4 then 8, and restarts bmid the
// three ways under them; then the tgtd anchor.
func benchRestart(b *testing.B, bl *benchLab, sizes []int) {
	ctx := context.Background()
	sec, done := section("8b-restart", "8b. Running nodes through bmid restarts",
		"Stay-up nodes (iscsid owns their sessions; bmi-lab-io writes, reads back and verifies 4 KiB blocks O_DIRECT|O_DSYNC) while bmid "+
			"is restarted gracefully (SIGTERM: Async Message, drain, exit; start), killed (SIGKILL; start) and upgraded (SIGTERM; another "+
			"binary starts). Largest I/O stall of any node, time from the restart to the last node's new session, errors and mismatches. "+
			"Anchor: tgtd (--bstype rbd) restarted by its systemd unit's stop and start commands under one stay-up node. "+
			"Goal: graceful <= 3 s, crash <= 15 s, 0 errors, 0 mismatches at every size.")
	defer done()
	upgraded := filepath.Join(bl.dir, "bmid-upgraded")
	if raw, err := os.ReadFile(bl.l.BmidBinary()); err != nil || os.WriteFile(upgraded, raw, 0o755) != nil {
		b.Fatalf("copy bmid for the upgrade: %v", err)
	}
	var nodes []stayUpNode
	defer func() {
		for _, n := range nodes {
			_, _ = bl.call("POST", bl.hil+"/node/"+n.node.Name+"/power_off", "", 200)
			_ = bl.deprovision(n.node)
		}
	}()
	bmidLog := filepath.Join(bl.dir, "bmid.log")
	for _, size := range sizes {
		for len(nodes) < size {
			n, err := bl.l.Node(fmt.Sprintf("node-%02d", len(nodes)+1))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bl.call("POST", bl.api+"/nodes/"+n.Name+"/provision", `{"image": "`+lab.StayUpImage+`", "nic": "eth0"}`, 201); err != nil {
				b.Fatal(err)
			}
			sn := stayUpNode{node: n, con: vm.Console{Path: n.Serial}}
			from := sn.con.Offset()
			if _, err := bl.call("POST", bl.hil+"/node/"+n.Name+"/power_cycle", "", 200); err != nil {
				b.Fatal(err)
			}
			nodes = append(nodes, sn)
			if _, err := sn.con.WaitFor(ctx, from, vm.StayUpRE, stormTimeout(size)); err != nil {
				b.Fatalf("%s: %v", n.Name, err)
			}
		}
		for _, n := range nodes {
			if _, err := n.con.WaitIO(ctx, n.con.Offset(), 10, 3*time.Minute); err != nil {
				b.Fatalf("%s: %v", n.node.Name, err)
			}
		}
		c := fmt.Sprintf("%d nodes", size)
		for _, m := range []struct {
			mode   lab.RestartMode
			binary string
		}{{lab.RestartGraceful, ""}, {lab.RestartKill, ""}, {lab.RestartUpgrade, upgraded}} {
			o, err := restartUnder(ctx, bl, nodes, bmidLog, func() error {
				_, err := bl.l.RestartBmid(ctx, m.mode, m.binary)
				return err
			}, true)
			if err != nil {
				b.Fatalf("%s, %s: %v", c, m.mode, err)
			}
			sec.Add(outcomeRow(c, "bmid "+string(m.mode), o))
		}
	}
	o, err := tgtdAnchor(ctx, bl, nodes[0].node)
	if err != nil {
		sec.Note("tgtd anchor not measured: %v", err)
	} else {
		for _, r := range o {
			sec.Add(r)
		}
	}
	for _, size := range sizes {
		c := fmt.Sprintf("%d nodes", size)
		g, k, u := sec.Find(c, stallSubject("bmid graceful")), sec.Find(c, stallSubject("bmid kill")), sec.Find(c, stallSubject("bmid upgrade"))
		if g == nil || k == nil || u == nil {
			continue
		}
		sec.Note("%s: goal graceful <= 3 s: %s (largest stall %.0f ms); crash <= 15 s: %s (%.0f ms); upgrade %.0f ms; errors and mismatches: %d",
			c, verdict(g.Max <= 3000 && u.Max <= 3000), g.Max, verdict(k.Max <= 15000), k.Max, u.Max, g.Errors+k.Errors+u.Errors)
	}
}

// stallSubject names the row of a restart's stalls.
func stallSubject(restart string) string { return restart + ": largest I/O stall per node" }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// outcomeRow is one restart as a row: the stall distribution over the
// nodes, the time until all were back, errors and mismatches.
func outcomeRow(c, subject string, o restartOutcome) Row {
	r := Durations(c, stallSubject(subject), "ms", o.stalls)
	r.Errors = int(o.errs + o.mis)
	r.Extra = map[string]float64{"all sessions back (ms)": float64(o.back.Milliseconds()), "errors": float64(o.errs), "mismatches": float64(o.mis)}
	return r
}

// restartUnder runs restart under nodes and waits until every node has
// verified 30 more writes; with countSessions it also waits for one new
// session per node in bmid's log.
func restartUnder(ctx context.Context, bl *benchLab, nodes []stayUpNode, bmidLog string, restart func() error, countSessions bool) (restartOutcome, error) {
	var o restartOutcome
	from := make([]int64, len(nodes))
	for i, n := range nodes {
		from[i] = n.con.Offset()
	}
	logFrom := fileSize(bmidLog)
	t0 := time.Now()
	if err := restart(); err != nil {
		return o, err
	}
	for i, n := range nodes {
		r, err := n.con.WaitIO(ctx, from[i], 30, 3*time.Minute)
		if err != nil {
			return o, fmt.Errorf("%s: %w", n.node.Name, err)
		}
		o.stalls = append(o.stalls, r.Stall)
		o.errs, o.mis = o.errs+r.Errors, o.mis+r.Mismatches
	}
	if countSessions {
		back, err := sessionsBack(bmidLog, logFrom, len(nodes), t0)
		if err != nil {
			return o, err
		}
		o.back = back
	} else {
		o.back = time.Duration(0)
		for _, s := range o.stalls {
			o.back = max(o.back, s)
		}
	}
	return o, nil
}

// sessionsBack reads bmid's log from offset from and returns how long
// after t0 the want-th new session started.
func sessionsBack(path string, from int64, want int, t0 time.Time) (time.Duration, error) {
	for end := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		raw, _ := os.ReadFile(path)
		var times []time.Time
		for _, line := range bytes.Split(raw[min(from, int64(len(raw))):], []byte("\n")) {
			if !bytes.Contains(line, []byte(`"msg":"iscsi session started"`)) {
				continue
			}
			var rec struct {
				Time time.Time `json:"time"`
			}
			if json.Unmarshal(line, &rec) == nil {
				times = append(times, rec.Time)
			}
		}
		if len(times) >= want {
			return times[want-1].Sub(t0), nil
		}
		if time.Now().After(end) {
			return 0, fmt.Errorf("bmid logged %d new sessions, want %d", len(times), want)
		}
	}
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
