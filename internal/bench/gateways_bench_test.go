//go:build ceph_preview

package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/loadtest"
	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/vm"
)

// BenchmarkGateways is section 14: a lab with two bmid gateways
// (bmi-lab up --gateways 2: keepalived, PostgreSQL) and four stay-up
// nodes whose disks are placed two on each; the stall each node's
// verifying workload sees when the gateway owning disks is killed
// (SIGKILL), and when the surviving owner of all four is paused
// (SIGSTOP) after the killed one came back; and the API's latency with
// both gateways serving at once.
func BenchmarkGateways(b *testing.B) {
	once(b, func() { benchGateways(b) })
}

func benchGateways(b *testing.B) {
	ctx := context.Background()
	loadFor := 20 * time.Second
	if isQuick {
		loadFor = 5 * time.Second
	}
	sec, done := section("14-gateways", "14. Two gateways: failover stall and API latency",
		fmt.Sprintf("bmi-lab up --gateways 2 (gateway.lease 5 s; keepalived tracking each bmid's /healthz moves the portal and each gateway's own addresses), "+
			"4 stay-up nodes verifying their disks, placed 2 on each gateway. Failover: the largest I/O stall each node's bmi-lab-io saw after "+
			"the fault, and the time until all 4 did 30 more verified writes (goal: <= 30 s, 0 errors). API: two load generators at once, "+
			"each in a process of its own, 50 clients each for %s on one gateway's API (through the lab's API proxy), list/show.", loadFor))
	defer done()
	bl := upLabWith(b, lab.Options{Name: "gw", Nodes: 4, Gateways: 2})
	l := bl.l
	names := []string{"node-01", "node-02", "node-03", "node-04"}
	consoles := map[string]vm.Console{}
	begin := map[string]int64{}
	for i, name := range names {
		n, err := l.Node(name)
		if err != nil {
			b.Fatal(err)
		}
		consoles[name] = vm.Console{Path: n.Serial}
		api := l.GatewayAPIURL(1+i%2) + "/api/v1/projects/" + lab.Project
		if _, err := bl.call("POST", api+"/nodes/"+name+"/provision", `{"image": "`+lab.StayUpImage+`", "nic": "eth0"}`, 201); err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		for _, name := range names {
			_, _ = bl.call("POST", bl.hil+"/node/"+name+"/power_off", "", 200)
			_, _ = bl.call("DELETE", bl.api+"/nodes/"+name+"/provision", "", 204)
		}
	}()
	for _, name := range names {
		begin[name] = consoles[name].Offset()
		if _, err := bl.call("POST", bl.hil+"/node/"+name+"/power_cycle", "", 200); err != nil {
			b.Fatal(err)
		}
	}
	for _, name := range names {
		if _, err := consoles[name].WaitFor(ctx, begin[name], vm.StayUpRE, 600*time.Second); err != nil {
			b.Fatalf("%s did not reach stay-up: %v", name, err)
		}
		if _, err := consoles[name].WaitIO(ctx, consoles[name].Offset(), 20, 120*time.Second); err != nil {
			b.Fatal(err)
		}
	}

	// The API with both gateways serving.
	paths := []string{"/api/v1/projects/lab/images", "/api/v1/projects/lab/disks", "/api/v1/projects/lab/nodes", "/api/v1/projects/lab/snapshots"}
	rows := make([]Row, 2)
	var all []float64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var loadErr error
	for i := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, cpu, err := loadtest.RunProcess(ctx, "TestLoadChild", loadtest.Spec{Base: l.GatewayAPIURL(i + 1), Clients: 50, Duration: loadFor,
				User: bl.user, Password: bl.pw, Paths: paths})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				loadErr = err
				return
			}
			lat := make([]float64, len(res.Latencies))
			for j, d := range res.Latencies {
				lat[j] = float64(d.Microseconds()) / 1000
			}
			all = append(all, lat...)
			r := Values("both serving", fmt.Sprintf("gateway g%d's API, list/show", i+1), "ms", lat)
			r.Errors = res.Errors
			r.Extra = map[string]float64{"p99": Percentile(lat, 0.99), "req/s": res.PerSecond(), "client_cpu_s": cpu.Seconds()}
			rows[i] = r
		}()
	}
	wg.Wait()
	if loadErr != nil {
		b.Fatal(loadErr)
	}
	sort.Float64s(all)
	sum := Values("both serving", "both APIs together, list/show", "ms", all)
	sum.Errors = rows[0].Errors + rows[1].Errors
	sum.Extra = map[string]float64{"p99": Percentile(all, 0.99), "req/s": rows[0].Extra["req/s"] + rows[1].Extra["req/s"]}
	sec.Add(rows[0])
	sec.Add(rows[1])
	sec.Add(sum)

	// Failover: g1 (2 disks) killed; then g1 back and g2 (all 4) paused.
	failover := func(c, victim string, a lab.GatewayAction) {
		res, err := l.Failover(ctx, victim, a, consoles, 30, 180*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		var stalls []time.Duration
		var per []string
		for _, n := range names {
			stalls = append(stalls, res.Stalls[n])
			per = append(per, fmt.Sprintf("%s %.1f s", n, res.Stalls[n].Seconds()))
		}
		sec.Add(Durations(c, "largest I/O stall of a node (4 nodes)", "s", stalls))
		sec.Add(Durations(c, "until all 4 nodes did 30 more verified writes", "s", []time.Duration{res.Resumed}))
		sec.Note("%s: stalls %s", c, strings.Join(per, ", "))
	}
	failover("g1 killed (SIGKILL), 2 disks", "g1", lab.GatewayKill)
	if err := l.StartGateway(ctx, "g1"); err != nil {
		b.Fatal(err)
	}
	failover("g2 paused (SIGSTOP), 4 disks", "g2", lab.GatewayPause)
	if err := l.SignalGateway(ctx, "g2", lab.GatewayResume); err != nil {
		b.Fatal(err)
	}
	for end := time.Now().Add(time.Minute); l.GatewayAlive("g2"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			b.Fatal("g2, resumed after its take-over, still runs a minute later")
		}
	}
	for _, n := range names {
		p, err := consoles[n].WaitIO(ctx, begin[n], 1, time.Minute)
		if err != nil || p.Errors != 0 || p.Mismatches != 0 {
			b.Fatalf("%s over the whole run: %+v, %v", n, p, err)
		}
	}
	sec.Note("every node: 0 I/O errors, 0 mismatches over the whole run; the paused gateway, resumed, stopped on its lost lease")
}
