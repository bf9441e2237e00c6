//go:build ceph_preview

package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/pgtest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/store"
)

// TestGatewayChild is not a test: TestGateways (and BenchmarkGatewayAPI)
// run the test binary with BMI_GATEWAY_CONFIG=<config JSON file> to be
// one bmid gateway, a process of its own that the test pauses and kills.
func TestGatewayChild(t *testing.T) {
	path := os.Getenv("BMI_GATEWAY_CONFIG")
	if path == "" {
		t.Skip("a gateway process of TestGateways")
	}
	var cfg config.Config
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &cfg) != nil {
		t.Fatalf("config: %v", err)
	}
	log, err := logging.New(os.Stderr, logging.Options{Format: "text", Level: os.Getenv("BMI_GATEWAY_LOG")})
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), cfg, log)
	if err != nil {
		fmt.Printf("NEW-ERR %v\n", err)
		os.Exit(3)
	}
	if n, err := strconv.Atoi(os.Getenv("BMI_GATEWAY_PG_MAXIDLE")); err == nil {
		d.db.SQL().SetMaxIdleConns(n) // BenchmarkGatewayAPI's "before"
	}
	if d.placed != nil { // not for BenchmarkGatewayAPI's lone bmid
		fmt.Printf("CEPH-CLIENT %s\n", d.placed.member.CephClient)
	}
	if err := d.Run(context.Background()); err != nil {
		fmt.Printf("RUN-ERR %v\n", err)
		os.Exit(3)
	}
}

// gatewayProc is one gateway process of TestGateways.
type gatewayProc struct {
	t      testing.TB
	id     string
	cfg    config.Config
	cmd    *exec.Cmd
	out    chan string // its stdout lines
	exited chan error
}

func startGateway(t testing.TB, cfg config.Config, dir string) *gatewayProc {
	t.Helper()
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, cfg.Gateway.ID+".json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gatewayProc{t: t, id: cfg.Gateway.ID, cfg: cfg, out: make(chan string, 100), exited: make(chan error, 1)}
	g.cmd = exec.Command(os.Args[0], "-test.run=^TestGatewayChild$", "-test.v")
	g.cmd.Env = append(os.Environ(), "BMI_GATEWAY_CONFIG="+path)
	if os.Getenv("BMI_GATEWAY_LOG") == "" {
		g.cmd.Env = append(g.cmd.Env, "BMI_GATEWAY_LOG=error")
	}
	g.cmd.Stderr = os.Stderr
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case g.out <- sc.Text():
			default:
			}
		}
		g.exited <- g.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = g.cmd.Process.Signal(syscall.SIGCONT)
		_ = g.cmd.Process.Kill()
		select {
		case <-g.exited:
		case <-time.After(30 * time.Second):
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + cfg.API.Listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		select {
		case err := <-g.exited:
			t.Fatalf("gateway %s exited: %v", g.id, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("gateway %s not ready within 2 minutes", g.id)
	return nil
}

// cephClient is the Ceph client address the gateway printed.
func (g *gatewayProc) cephClient() string {
	g.t.Helper()
	for {
		select {
		case l := <-g.out:
			if a, ok := strings.CutPrefix(l, "CEPH-CLIENT "); ok {
				return a
			}
		case <-time.After(10 * time.Second):
			g.t.Fatalf("gateway %s printed no Ceph client", g.id)
		}
	}
}

func (g *gatewayProc) client(t testing.TB, user, pw string) *client.Client {
	c, err := client.New("http://"+g.cfg.API.Listen, user, logging.Secret(pw))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exports reports whether the gateway's own iSCSI listener serves disk
// (a real initiator, libiscsi, logs in as the node, with the disk's CHAP
// secret from the database, and reads its size).
func (g *gatewayProc) exports(db *store.DB, readcap, node string, d api.Disk) bool {
	g.t.Helper()
	tg, err := db.Target(context.Background(), d.ID)
	if err != nil {
		g.t.Fatal(err)
	}
	return g.exportsTarget(readcap, node, tg)
}

// exportsTarget is exports for a target record: the gateway's target
// exports it itself (a first login step at its own address is not
// redirected) and the node logs in to it there.
func (g *gatewayProc) exportsTarget(readcap, node string, tg core.Target) bool {
	g.t.Helper()
	initiator := (&site{cfg: g.cfg}).nodeInitiator(node)
	st, _, err := probeLogin(g.cfg.Gateway.Addresses[0], initiator, tg.IQN)
	if err != nil {
		g.t.Fatalf("login probe at %s (%s): %v", g.id, g.cfg.Gateway.Addresses[0], err)
	}
	if st != probeOK {
		return false
	}
	return reads(readcap, initiator, g.cfg.Gateway.Addresses[0], tg)
}

// reads reports whether initiator logs in to tg at portal, following
// redirects, and reads its size (libiscsi).
func reads(readcap, initiator, portal string, tg core.Target) bool {
	out, err := exec.Command(readcap, "-i", initiator, iscsiURL(portal, tg)).CombinedOutput()
	return err == nil && strings.Contains(string(out), "67108864")
}

// gwNode is a node of TestGateways: its project, the client it was
// provisioned through, and its disk.
type gwNode struct {
	name, project string
	via           *client.Client
	disk          api.Disk
}

// TestGateways: two bmid gateway processes of one group on one PostgreSQL
// database and real Ceph. The API of either serves; disks are placed on
// both, balanced by count, and each gateway's iSCSI target exports exactly
// the disks placed on it (libiscsi logs in as the nodes); a deprovision
// through the other gateway has the owner unexport first. A paused gateway
// (SIGSTOP) is taken over once its lease expires: its Ceph client is
// blocklisted and its disks are exported by the survivor (the stall is
// logged); resumed, it finds its lease lost and stops. A killed gateway
// (SIGKILL) is taken over the same way. A disk moved between gateways is
// exported by the one it moved to only. SCSI reservations hold across
// the gateways (reserve_gw_test.go): libiscsi's persistent-reservation
// suites pass with two nexuses of a node on its disk's gateway, one
// redirected by the other gateway; a write-exclusive reservation taken
// there is enforced, as it was, by the gateway that takes the disk over
// after a pause and after a kill; and a CLEAR the paused gateway reads
// when it resumes changes nothing.
func TestGateways(t *testing.T) {
	readcap := testenv.RequireCommand(t, "iscsi-readcapacity16", "libiscsi-bin")
	ctx := context.Background()
	dsn := pgtest.Database(t)
	hilURL := startHIL(t)
	uid := newUID(t)
	dir := t.TempDir()
	// The group's floating portal, held by gw-a (keepalived's job outside
	// tests): a node logs in there and is redirected to the gateway its
	// disk is placed on, at that gateway's own address.
	portal := freeAddr(t)
	mk := func(id string) config.Config {
		sd := filepath.Join(dir, id)
		if err := os.MkdirAll(sd, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := siteConfig(t, uid, hilURL, sd)
		cfg.State = config.State{Engine: "postgres", DSN: dsn}
		cfg.Security.KeyFile = filepath.Join(dir, "secret.key")
		cfg.Gateway = config.Gateway{ID: id, Group: "rack1", Lease: 3 * time.Second, Addresses: []string{cfg.ISCSI.Listen[0]}}
		cfg.ISCSI.Portal = portal
		if id == "gw-a" {
			cfg.ISCSI.Listen = append(cfg.ISCSI.Listen, portal)
		}
		if err := cfg.Validate("test"); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfgA := mk("gw-a")
	golden := uid + "-golden"
	rbd(t, cfgA.Ceph.Conf, cfgA.Ceph.Pool, "create", "--size", "64M", golden)
	t.Cleanup(func() { cephtest.RBD(cfgA.Ceph.Conf, cfgA.Ceph.Pool, "rm", golden) })
	a := startGateway(t, cfgA, dir)
	b := startGateway(t, mk("gw-b"), dir)
	clientB := b.cephClient()
	db, err := store.OpenPostgres(ctx, dsn, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key, _, err := store.LoadKey(cfgA.Security.KeyFile, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetKey(key); err != nil {
		t.Fatal(err)
	}

	adminA := a.client(t, admin.User, string(admin.Password))
	for _, p := range []string{"tenant-a", "tenant-b"} {
		if _, err := adminA.CreateProject(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"tenant-a", "tenant-b"} {
		if _, _, err := adminA.Import(ctx, p, api.ImportRequest{Source: golden, Name: "debian"}, false); err != nil {
			t.Fatal(err)
		}
	}
	// Provisions through both gateways' APIs.
	nodes := []*gwNode{
		{name: "node-01", project: "tenant-a", via: a.client(t, "alice", "alice-secret")},
		{name: "node-02", project: "tenant-a", via: a.client(t, "alice", "alice-secret")},
		{name: "node-03", project: "tenant-b", via: b.client(t, "bob", "bob-secret")},
	}
	gws := map[string]*gatewayProc{"gw-a": a, "gw-b": b}
	for _, n := range nodes {
		if n.disk, _, err = n.via.Provision(ctx, n.project, n.name, api.ProvisionRequest{Image: "debian", NIC: "eth0"}, false); err != nil {
			t.Fatalf("provision %s: %v", n.name, err)
		}
		// The node logs in at once, whichever gateway exports its disk
		// (its ACL was applied there before the provision returned).
		if owner := placements(t, db.SQL())[n.disk.Target.IQN]; !gws[owner].exports(db, readcap, n.name, n.disk) {
			t.Fatalf("%s cannot log in to its disk on %s right after its provision", n.name, owner)
		}
	}
	initiator := func(node string) string { return (&site{cfg: cfgA}).nodeInitiator(node) }
	checkPlaced := func(alive ...*gatewayProc) map[string]int {
		t.Helper()
		pl := placements(t, db.SQL())
		count := map[string]int{}
		for _, n := range nodes {
			owner := pl[n.disk.Target.IQN]
			count[owner]++
			// Through the group's one portal, wherever it is placed.
			tg, err := db.Target(ctx, n.disk.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reads(readcap, initiator(n.name), portal, tg) {
				t.Fatalf("%s cannot log in to its disk (placed on %s) through the group's portal", n.name, owner)
			}
			for _, g := range alive {
				if got := g.exports(db, readcap, n.name, n.disk); got != (g.id == owner) {
					t.Fatalf("%s's disk is placed on %s; gateway %s exports it: %v", n.name, owner, g.id, got)
				}
			}
		}
		return count
	}
	// node-01 on gw-a (a tie goes to the provisioning gateway), node-02 on
	// gw-b (fewer disks), node-03 through gw-b on gw-b (a tie).
	if count := checkPlaced(a, b); count["gw-a"] != 1 || count["gw-b"] != 2 {
		t.Fatalf("3 disks placed %v; want 1 on gw-a and 2 on gw-b", count)
	}
	// A disk moved: its owner unexports it and hands it over, and the new
	// owner exports it; then back.
	mover, err := store.NewGateway(db, "test-mover", 0)
	if err != nil {
		t.Fatal(err)
	}
	moved := nodes[0]
	for _, to := range []*gatewayProc{b, a} {
		if err := mover.Move(ctx, moved.disk.Target.IQN, to.id); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for placements(t, db.SQL())[moved.disk.Target.IQN] != to.id || !to.exports(db, readcap, moved.name, moved.disk) {
			if time.Now().After(deadline) {
				t.Fatalf("%s's disk not moved to %s within a minute", moved.name, to.id)
			}
			time.Sleep(300 * time.Millisecond)
		}
		checkPlaced(a, b)
	}
	// A deprovision through the gateway that does not export the disk: the
	// owner unexports it first; a new provision is placed again.
	var far *gwNode
	for _, n := range nodes {
		if placements(t, db.SQL())[n.disk.Target.IQN] == "gw-b" {
			far = n
		}
	}
	via := a.client(t, "alice", "alice-secret")
	if far.project == "tenant-b" {
		via = a.client(t, "bob", "bob-secret")
	}
	farTarget, err := db.Target(ctx, far.disk.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := via.Deprovision(ctx, far.project, far.name, "eth0"); err != nil {
		t.Fatalf("deprovision %s through gw-a: %v", far.name, err)
	}
	if _, ok := placements(t, db.SQL())[far.disk.Target.IQN]; ok || b.exportsTarget(readcap, far.name, farTarget) {
		t.Fatalf("after its deprovision %s's disk is still placed or exported by gw-b", far.name)
	}
	if far.disk, _, err = via.Provision(ctx, far.project, far.name, api.ProvisionRequest{Image: "debian", NIC: "eth0"}, false); err != nil {
		t.Fatal(err)
	}
	if count := checkPlaced(a, b); count["gw-b"] == 0 {
		t.Fatalf("the new disk was not placed on the gateway with fewer disks: %v", count)
	}

	// A persistent reservation on a disk of gw-b (reserve_gw_test.go).
	res := reserveOn(t, db, b, portal, initiator, nodes)

	// Pause gw-b: gw-a fences it and exports its disks.
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	// A login at the portal for gw-b's disks while gw-b is paused: the
	// redirect to gw-b while its lease lasts, "service unavailable" from
	// its expiry until gw-a has exported them, then gw-a's own export;
	// never "not found", on which initiators give up.
	type nodeDisk struct {
		node string
		tg   core.Target
	}
	var bDisks []nodeDisk
	for _, n := range nodes {
		if placements(t, db.SQL())[n.disk.Target.IQN] == "gw-b" {
			tg, err := db.Target(ctx, n.disk.ID)
			if err != nil {
				t.Fatal(err)
			}
			bDisks = append(bDisks, nodeDisk{n.name, tg})
		}
	}
	seen := map[uint16]int{}
	probePortal := func() {
		for _, d := range bDisks {
			tg := d.tg
			st, to, err := probeLogin(portal, initiator(d.node), tg.IQN)
			if err != nil {
				t.Fatalf("login probe at the portal: %v", err)
			}
			if st == probeRedirect && to != b.cfg.Gateway.Addresses[0]+",1" {
				t.Fatalf("a login for gw-b's disk %s redirected to %q, not gw-b's address %s", tg.IQN, to, b.cfg.Gateway.Addresses[0])
			}
			if st != probeOK && st != probeRedirect && st != probeUnavailable {
				t.Fatalf("a login at the portal for gw-b's disk %s while gw-b is paused: status 0x%04x (want a redirect, service unavailable, or the disk)", tg.IQN, st)
			}
			seen[st]++
		}
	}
	waitAll := func(g *gatewayProc, what string, also func()) time.Duration {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if also != nil {
				also()
			}
			all := true
			for _, n := range nodes {
				all = all && g.exports(db, readcap, n.name, n.disk)
			}
			if all {
				return time.Since(paused)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s does not export every disk 2 minutes later (placements %v)", what, g.id, placements(t, db.SQL()))
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	stall := waitAll(a, "gw-b paused", probePortal)
	probePortal()
	t.Logf("logins at the portal for gw-b's disks while gw-b was paused: %d redirected to it, %d service unavailable, %d served (by gw-a)",
		seen[probeRedirect], seen[probeUnavailable], seen[probeOK])
	if len(bDisks) == 0 || seen[probeRedirect] == 0 || seen[probeOK] == 0 {
		t.Fatalf("gw-b's %d disks at the portal while it was paused: %v; want redirects to gw-b first, then gw-a's own export", len(bDisks), seen)
	}
	t.Logf("gw-b paused (SIGSTOP): gw-a exports all %d disks %s later (lease %s)", len(nodes), stall.Round(100*time.Millisecond), cfgA.Gateway.Lease)
	if out, err := exec.Command("ceph", "--conf", cfgA.Ceph.Conf, "osd", "blocklist", "ls").CombinedOutput(); err != nil || !strings.Contains(string(out), clientB) {
		t.Fatalf("gw-b's Ceph client %s is not blocklisted after the take-over: %v\n%s", clientB, err, out)
	}
	for iqn, gw := range placements(t, db.SQL()) {
		if gw != "gw-a" {
			t.Fatalf("after the take-over %s is placed on %s", iqn, gw)
		}
	}
	// The reservation holds on gw-a; a CLEAR queued on the holder's old
	// session to gw-b is read by gw-b when it resumes.
	stale := res.holdsOn(a, portal)
	clearThrough(t, stale[0])
	// Resumed, gw-b finds its lease lost and stops.
	if err := b.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-b.exited:
		if err == nil {
			t.Fatal("gw-b, resumed after its take-over, exited 0")
		}
	case <-time.After(time.Minute):
		t.Fatal("gw-b, resumed after its take-over, still runs a minute later")
	}
	lost := false
	for len(b.out) > 0 {
		lost = lost || strings.Contains(<-b.out, "lost its lease")
	}
	if !lost {
		t.Fatal("gw-b stopped without saying it lost its lease")
	}
	res.clearOutcome(stale[0], a, portal)

	// gw-b comes back (a new process, the same id), gets a new disk, and
	// gw-a is killed: gw-b takes every disk over.
	b = startGateway(t, mk("gw-b"), dir)
	gws["gw-b"] = b
	far = nodes[0]
	via = b.client(t, "alice", "alice-secret")
	if err := via.Deprovision(ctx, far.project, far.name, "eth0"); err != nil {
		t.Fatal(err)
	}
	if far.disk, _, err = via.Provision(ctx, far.project, far.name, api.ProvisionRequest{Image: "debian", NIC: "eth0"}, false); err != nil {
		t.Fatal(err)
	}
	if count := checkPlaced(a, b); count["gw-b"] != 1 || count["gw-a"] != 2 {
		t.Fatalf("after gw-b came back, the new disk placed %v; want it on gw-b", count)
	}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	paused = time.Now()
	stall = waitAll(b, "gw-a killed", nil)
	t.Logf("gw-a killed (SIGKILL): gw-b exports all %d disks %s later (lease %s)", len(nodes), stall.Round(100*time.Millisecond), cfgA.Gateway.Lease)
	res.holdsOn(b, b.cfg.Gateway.Addresses[0])

	// Clean up through the survivor.
	for _, n := range nodes {
		c := b.client(t, "alice", "alice-secret")
		if n.project == "tenant-b" {
			c = b.client(t, "bob", "bob-secret")
		}
		if err := c.Deprovision(ctx, n.project, n.name, "eth0"); err != nil {
			t.Errorf("deprovision %s: %v", n.name, err)
		}
	}
	adminB := b.client(t, admin.User, string(admin.Password))
	for _, p := range []string{"tenant-a", "tenant-b"} {
		if err := adminB.RemoveImage(ctx, p, "debian"); err != nil {
			t.Errorf("remove image: %v", err)
		}
	}
}
