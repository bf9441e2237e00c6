package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

// TestGatewayFailover is [gateways]' proof on the lab: two bmid gateways
// in namespaces of their own, keepalived moving the nodes' addresses, on
// the lab's PostgreSQL; four stay-up nodes (iscsid, bmi-lab-io verifying
// their disks) boot at once through the group's portal, their disks
// placed two on each gateway. One gateway is killed (SIGKILL): the other
// fences it and takes its disks over, and every node keeps errors=0
// mismatches=0 with its I/O resumed; the stall of each node is logged.
// The killed gateway is started again, and the survivor, now owning all
// four disks, is paused (SIGSTOP): its keepalived drops its addresses, the
// other fences its Ceph client (blocklisted) and takes every disk over,
// the nodes go on; resumed (SIGCONT), the paused one finds its lease lost
// and stops without having written (its client is blocklisted, and the
// nodes' verifiers find every block they wrote). Started again, both
// gateways are restarted rolling (bmi-lab bmid restart): one gateway at a
// time, the command returning with keepalived's addresses back in place,
// the nodes going on, every disk on a running gateway.
func TestGatewayFailover(t *testing.T) {
	requireSite(t, map[string]string{"keepalived": "keepalived", "curl": "curl"})
	if ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres"); len(ms) == 0 {
		testenv.Missing(t, "PostgreSQL", "install Debian's postgresql (make deps)")
	}
	ctx := context.Background()
	t0 := time.Now()
	cli, _, dir := newSite(t, "gwf")
	l, cred := upLab(t, cli, "gwf", dir, "--nodes", "4", "--gateways", "2")
	t.Logf("up with 2 gateways: %.0f s", time.Since(t0).Seconds())
	call := apiCaller(t, lab.HILUser, cred.HILUser)
	hil := l.HILURL() + "/v0"
	names := []string{"node-01", "node-02", "node-03", "node-04"}
	var nodes []liveNode
	iqns := map[string]string{}
	for i, name := range names {
		n, err := l.Node(name)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, liveNode{name: name, con: vm.Console{Path: n.Serial}})
		// Through both gateways' APIs.
		api := l.GatewayAPIURL(1 + i%2)
		m := call("POST", api+"/api/v1/projects/"+lab.Project+"/nodes/"+name+"/provision", `{"image": "`+lab.StayUpImage+`", "nic": "eth0"}`, 201)
		tg, _ := m["target"].(map[string]any)
		iqn, _ := tg["iqn"].(string)
		if iqn == "" {
			t.Fatalf("provision %s: no target in %v", name, m)
		}
		iqns[name] = iqn
	}
	db, err := store.OpenPostgres(ctx, l.PostgresDSN(), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	placed := func() map[string]string {
		t.Helper()
		rows, err := db.SQL().QueryContext(ctx, `SELECT iqn, gateway FROM placements`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		byIQN := map[string]string{}
		for rows.Next() {
			var iqn, gw string
			if err := rows.Scan(&iqn, &gw); err != nil {
				t.Fatal(err)
			}
			byIQN[iqn] = gw
		}
		out := map[string]string{}
		for _, n := range names {
			out[n] = byIQN[iqns[n]]
		}
		return out
	}
	count := func(p map[string]string) map[string]int {
		c := map[string]int{}
		for _, gw := range p {
			c[gw]++
		}
		return c
	}
	if c := count(placed()); c["g1"] != 2 || c["g2"] != 2 {
		t.Fatalf("4 disks placed %v; want 2 on each gateway", placed())
	}
	t.Logf("placements: %v", placed())

	tb := time.Now()
	begin := bootStayUp(ctx, t, call, hil, nodes, 600*time.Second)
	t.Logf("4 nodes booted to stay-up through the group's portal: %.0f s", time.Since(tb).Seconds())
	for _, n := range nodes {
		waitProgress(t, n, n.con.Offset(), 20, 120*time.Second)
	}
	// Each node's timeline, read through either gateway, is the whole
	// boot: the DHCP and script the holder of the portal served, and the
	// logins of iPXE and of the booted OS the disk's owner took.
	for _, n := range names {
		var seen []string
		for gw := 1; gw <= 2; gw++ {
			tl := call("GET", l.GatewayAPIURL(gw)+"/api/v1/projects/"+lab.Project+"/nodes/"+n+"/timeline", "", 200)
			evs, _ := tl["events"].([]any)
			steps := map[string]bool{}
			for _, e := range evs {
				ev, _ := e.(map[string]any)
				step, _ := ev["step"].(string)
				client, _ := ev["client"].(string) // omitted when unknown
				steps[step+"/"+client] = true
			}
			for _, want := range []string{"dhcp-ack/ipxe", "ipxe-script-served/", "iscsi-login/ipxe", "iscsi-login/os"} {
				if !steps[want] {
					t.Errorf("%s's timeline through g%d lacks %s: %v", n, gw, want, steps)
				}
			}
			seen = append(seen, fmt.Sprint(len(evs)))
		}
		t.Logf("%s's timeline: %s events through g1 and g2 (disk on %s)", n, strings.Join(seen, " and "), placed()[n])
	}

	// The failover of one gateway: every node's I/O goes on, verified.
	consoles := map[string]vm.Console{}
	for _, n := range nodes {
		consoles[n.name] = n.con
	}
	var report strings.Builder
	failover := func(what, victim, survivor string, a lab.GatewayAction) {
		t.Helper()
		logFrom := fileSize(l.GatewayLog(survivor))
		res, err := l.Failover(ctx, victim, a, consoles, 30, 180*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b, _ := os.ReadFile(l.GatewayLog(survivor))
		if !bytes.Contains(b[min(logFrom, int64(len(b))):], []byte(`"msg":"fenced a dead gateway in Ceph; taking over its disks and operations"`)) {
			t.Fatalf("%s: %s logged no fencing of %s", what, survivor, victim)
		}
		for n, gw := range placed() {
			if gw != survivor {
				t.Fatalf("%s: %s's disk is placed on %s, not on the survivor %s", what, n, gw, survivor)
			}
		}
		var stalls []string
		for _, n := range names {
			stalls = append(stalls, fmt.Sprintf("%s %d ms", n, res.Stalls[n].Milliseconds()))
		}
		line := fmt.Sprintf("%-22s I/O resumed on all 4 nodes %4.1f s after it; largest stall per node: %s", what, res.Resumed.Seconds(), strings.Join(stalls, ", "))
		t.Log(line)
		report.WriteString(line + "\n")
	}
	failover("g1 killed (SIGKILL)", "g1", "g2", lab.GatewayKill)

	// g1 comes back (empty) and takes the group's addresses back
	// (keepalived preempts); the nodes go on. Then g2, owning all four
	// disks now, is paused.
	if _, err := cli("gateway", "start", "g1"); err != nil {
		t.Fatalf("gateway start g1: %v", err)
	}
	for end := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		out, _ := exec.Command("ip", "-n", l.Namespace+"-g1", "-o", "addr", "show", "dev", "vlan110").CombinedOutput()
		if strings.Contains(string(out), " 10.77.10.1/24 ") {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("g1, started again, does not hold the group's address 10.77.10.1 2 minutes later:\n%s", out)
		}
	}
	for _, n := range nodes {
		waitProgress(t, n, n.con.Offset(), 20, 180*time.Second)
	}
	g2Log := l.GatewayLog("g2")
	client := regexp.MustCompile(`"msg":"joined as a gateway".*?"ceph_client":"([^"]+)"`).FindSubmatch(mustRead(t, g2Log))
	if client == nil {
		t.Fatalf("g2's log names no Ceph client")
	}
	failover("g2 paused (SIGSTOP)", "g2", "g1", lab.GatewayPause)
	ceph, err := l.Ceph()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", l.Namespace, "ceph", "--conf", ceph.ConfPath(), "osd", "blocklist", "ls").CombinedOutput()
	if err != nil || !strings.Contains(string(out), string(client[1])) {
		t.Fatalf("the paused g2's Ceph client %s is not blocklisted: %v\n%s", client[1], err, out)
	}
	// Resumed, g2 stops on its lost lease.
	logFrom := fileSize(g2Log)
	if err := l.SignalGateway(ctx, "g2", lab.GatewayResume); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(time.Minute); l.GatewayAlive("g2"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("g2, resumed after its take-over, still runs a minute later")
		}
	}
	after := mustRead(t, g2Log)[logFrom:]
	if !bytes.Contains(after, []byte("lost its lease")) {
		t.Fatalf("g2 stopped without saying it lost its lease:\n%s", after)
	}
	t.Logf("g2 resumed: stopped on its lost lease; %d log lines after the resume mention the blocklist or a failed write",
		bytes.Count(after, []byte("blocklist"))+bytes.Count(after, []byte("write failed")))
	// A while more of verified I/O on the one gateway left.
	for _, n := range nodes {
		waitProgress(t, n, n.con.Offset(), 20, 120*time.Second)
	}

	// g2 is started again, and bmid is restarted as an operator restarts a
	// multi-gateway site: rolling, each gateway once the other has
	// settled. The nodes go on, and every disk ends on a live gateway.
	if _, err := cli("gateway", "start", "g2"); err != nil {
		t.Fatalf("gateway start g2: %v", err)
	}
	rolling := func(what string, args ...string) {
		t.Helper()
		from := map[string]int64{}
		for _, n := range nodes {
			from[n.name] = n.con.Offset()
		}
		old := l.GatewayList()
		start := time.Now()
		out, err := cli(append([]string{"bmid", "restart"}, args...)...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
		took := time.Since(start)
		// It returns once the site has settled: keepalived has put the
		// floating addresses back where both gateways being healthy
		// puts them (the group's on g1, each gateway's own on it).
		for gw, want := range map[string]map[string]bool{
			"g1": {"10.77.10.1/24": true, "10.77.10.21/24": true, "10.77.10.22/24": false},
			"g2": {"10.77.10.1/24": false, "10.77.10.21/24": false, "10.77.10.22/24": true},
		} {
			held, _ := exec.Command("ip", "-n", l.Namespace+"-"+gw, "-o", "-4", "addr", "show", "dev", "vlan110").CombinedOutput()
			for addr, holds := range want {
				if strings.Contains(string(held), " "+addr+" ") != holds {
					t.Fatalf("%s returned with %s holding %s: %v, want %v:\n%s", what, gw, addr, !holds, holds, held)
				}
			}
		}
		steps := regexp.MustCompile(`(?m)^gateway (g\d) restarted .*pid (\d+) -> (\d+), stopped in ([\d.]+) s, ready ([\d.]+) s and settled ([\d.]+) s after start`).FindAllStringSubmatch(out, -1)
		if len(steps) != 2 || steps[0][1] != "g1" || steps[1][1] != "g2" {
			t.Fatalf("%s: want one step per gateway, g1 then g2:\n%s", what, out)
		}
		gws := l.GatewayList()
		for k, g := range gws {
			if !g.Bmid.Alive() || g.Bmid.Pid == old[k].Bmid.Pid || fmt.Sprint(g.Bmid.Pid) != steps[k][3] {
				t.Fatalf("%s: gateway %s: pid %d (alive %v), was %d; the command said %s", what, g.ID, g.Bmid.Pid, g.Bmid.Alive(), old[k].Bmid.Pid, steps[k][0])
			}
		}
		// One at a time: g2's new bmid started no sooner than g1's had
		// been ready and the site settled for the settle window (process
		// start times, in the kernel's clock ticks of 10 ms).
		if apart := time.Duration(gws[1].Bmid.Start-gws[0].Bmid.Start) * 10 * time.Millisecond; apart < lab.SettleWindow {
			t.Fatalf("%s: g2's new bmid started %v after g1's, less than the settle window %v: not one at a time", what, apart, lab.SettleWindow)
		}
		var stalls []string
		for _, n := range nodes {
			stalls = append(stalls, fmt.Sprintf("%s %d ms", n.name, waitProgress(t, n, from[n.name], 30, 180*time.Second)))
		}
		for n, gw := range placed() {
			if !l.GatewayAlive(gw) {
				t.Fatalf("%s: %s's disk is placed on %q, no running gateway", what, n, gw)
			}
		}
		var times []string
		for _, st := range steps {
			times = append(times, fmt.Sprintf("%s stopped %s s, ready %s s, settled %s s", st[1], st[4], st[5], st[6]))
		}
		line := fmt.Sprintf("%-22s took %5.1f s (%s); largest stall per node: %s; placements after: %v", what, took.Seconds(),
			strings.Join(times, "; "), strings.Join(stalls, ", "), count(placed()))
		t.Log(line)
		report.WriteString(line + "\n")
	}
	rolling("rolling restart")
	checkConsoles(t, nodes, begin)
	if err := os.MkdirAll("../../test-results", 0o755); err == nil {
		_ = os.WriteFile("../../test-results/gateways-lab.txt", []byte(report.String()), 0o644)
	}
	api := l.APIURL() + "/api/v1/projects/" + lab.Project
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
	if _, err := os.Stat(filepath.Join(os.TempDir(), "bmi-lab-gwf-pg")); err == nil {
		t.Fatal("down left the lab's PostgreSQL files")
	}
	t.Logf("whole test: %.0f s", time.Since(t0).Seconds())
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
