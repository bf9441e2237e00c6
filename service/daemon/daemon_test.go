//go:build ceph_preview

package daemon

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/service/iscsi"
	"github.com/bmi-go/bmi/service/logging"
)

func TestMain(m *testing.M) { os.Exit(cephtest.Main(m)) }

var (
	alice = core.Principal{User: "alice", Password: "alice-secret"}
	admin = core.Principal{User: "hiladmin", Password: "admin-secret"}
)

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// site is a real bmid (real Ceph, real iSCSI target on loopback) with
// hil-mock seeded from configs/hil-mock.example.yaml.
type site struct {
	t      testing.TB
	cfg    config.Config
	conf   string
	pool   string
	d      *Daemon
	cancel context.CancelFunc
	done   chan error
}

func newUID(t testing.TB) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "it" + hex.EncodeToString(b[:])
}

func startHIL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hm, err := hilmock.New(ctx, filepath.Join(t.TempDir(), "hil.db"), hilmock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := hilmock.ReadInventory("../../configs/hil-mock.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hm.Seed(ctx, inv); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- hm.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done; hm.Close() })
	return hm.URL()
}

func siteConfig(t testing.TB, uid, hilURL, stateDir string) config.Config {
	conf, pool := cephtest.Cluster(t)
	cfg := config.Default()
	cfg.UID = uid
	cfg.State.Path = filepath.Join(stateDir, "bmid.db")
	cfg.Ceph.Conf, cfg.Ceph.Pool, cfg.Ceph.OpTimeout = conf, pool, 20*time.Second
	cfg.HIL.URL = hilURL
	cfg.API.Listen = freeAddr(t)
	portal := freeAddr(t)
	cfg.ISCSI.Listen, cfg.ISCSI.Portal = []string{portal}, portal
	cfg.Boot.TFTP.Root = "/usr/lib/ipxe"
	// No DHCP here: scripts are fetched straight from the boot listener,
	// so the lease and token checks (tested in service/ipxe and by the
	// namespace attack test) are off; the power check stays on.
	cfg.Boot.HTTPListen = freeAddr(t)
	cfg.Boot.IPXE.RequireLease, cfg.Boot.IPXE.ScriptToken = false, false
	cfg.HIL.ProvisioningNetwork, cfg.HIL.User = "bmi-provision", "bmi"
	cfg.HIL.PasswordFile = filepath.Join(stateDir, "hil-password")
	if err := os.WriteFile(cfg.HIL.PasswordFile, []byte("bmi-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate("test"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (s *site) start() {
	s.t.Helper()
	d, err := New(context.Background(), s.cfg, logging.Discard())
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.d, s.cancel, s.done = d, cancel, make(chan error, 1)
	go func() { s.done <- d.Run(ctx) }()
	s.waitReady()
}

func (s *site) stop() {
	s.t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Fatalf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		s.t.Fatal("bmid did not stop within 60 s")
	}
}

func (s *site) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.cfg.API.Listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatal("bmid not ready within 60 s")
}

// get fetches path from the boot listener (/boot/...) or the API.
func (s *site) get(path string) (int, string) {
	s.t.Helper()
	addr := s.cfg.API.Listen
	if strings.HasPrefix(path, "/boot/") {
		addr = s.cfg.Boot.HTTPListen
	}
	return s.getFrom(addr, path)
}

func (s *site) getFrom(addr, path string) (int, string) {
	s.t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// nicNetworks asks HIL (as the node's tenant) which networks a NIC is on.
func (s *site) nicNetworks(node, nic string) map[string]string {
	s.t.Helper()
	n, err := hil.New(s.cfg.HIL.URL, nil).ShowNode(context.Background(), hil.Credentials{User: alice.User, Password: alice.Password}, node)
	if err != nil {
		s.t.Fatal(err)
	}
	c, err := n.NIC(nic)
	if err != nil {
		s.t.Fatal(err)
	}
	return c.Networks
}

func rbd(t testing.TB, conf, pool string, args ...string) string {
	t.Helper()
	out, err := cephtest.RBD(conf, pool, args...)
	if err != nil {
		t.Fatalf("rbd %v: %v\n%s", args, err, out)
	}
	return out
}

// iscsiURL is a libiscsi URL for the disk's target with its CHAP secret.
func iscsiURL(portal string, t core.Target) string {
	return fmt.Sprintf("iscsi://%s%%%s@%s/%s/0", t.CHAPUser, t.CHAPSecret, portal, t.IQN)
}

// nodeInitiator is the initiator name the boot script gives node.
func (s *site) nodeInitiator(node string) string {
	return iscsi.NodeInitiator(s.cfg.ISCSI.IQNPrefix, s.cfg.UID, node)
}

func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	readcap := testenv.RequireCommand(t, "iscsi-readcapacity16", "libiscsi-bin")
	s := &site{t: t, cfg: siteConfig(t, newUID(t), startHIL(t), t.TempDir())}
	s.conf, s.pool = s.cfg.Ceph.Conf, s.cfg.Ceph.Pool
	// bmid runs as its own cephx user with cephCaps, not client.admin.
	s.cfg.Ceph.ID, s.cfg.Ceph.Keyring = leastPrivilegeUser(t, s.conf, s.pool, "bmid-"+s.cfg.UID, t.TempDir())
	golden := s.cfg.UID + "-golden"
	rbd(t, s.conf, s.pool, "create", "--size", "64M", golden)
	t.Cleanup(func() { cephtest.RBD(s.conf, s.pool, "rm", golden) })
	s.start()
	defer s.stop()
	svc := s.d.Service()

	for _, p := range []string{"tenant-a", "tenant-b"} {
		if _, err := svc.CreateProject(ctx, admin, p); err != nil {
			t.Fatal(err)
		}
	}
	// Through the API: a non-member gets 403 for a project that exists and
	// for one that does not; a project HIL does not know cannot be created.
	for _, c := range []struct {
		method, path, user, pw, body string
		want                         int
	}{
		{"GET", "/api/v1/projects/tenant-a/images", "bob", "bob-secret", "", 403},
		{"GET", "/api/v1/projects/no-such-project/images", "bob", "bob-secret", "", 403},
		{"POST", "/api/v1/projects", "hiladmin", "admin-secret", `{"name":"not-in-hil"}`, 400},
		{"POST", "/api/v1/projects", "hiladmin", "admin-secret", `{"name":""}`, 400},
	} {
		req, _ := http.NewRequest(c.method, "http://"+s.cfg.API.Listen+c.path, strings.NewReader(c.body))
		req.SetBasicAuth(c.user, c.pw)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("%s %s as %s = %d %s, want %d", c.method, c.path, c.user, resp.StatusCode, b, c.want)
		}
	}
	if _, err := svc.ImportImage(ctx, admin, "tenant-a", golden, core.ImportOptions{Name: "debian"}); err != nil {
		t.Fatal(err)
	}
	d1, err := svc.Provision(ctx, alice, "tenant-a", "node-01", "debian", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	// Provision put the node's NIC on the provisioning network (HIL says so).
	if nets := s.nicNetworks("node-01", "eth0"); nets["vlan/native"] != "bmi-provision" {
		t.Fatalf("node-01/eth0 networks after provision: %v", nets)
	}
	// While HIL says node-01 is off, its MAC gets no script with a secret:
	// the request cannot come from the node.
	if code, script := s.get("/boot/52:54:00:00:01:01.ipxe"); code != 200 || !strings.Contains(script, "BMI-NO-BOOT-CONFIG") ||
		strings.Contains(script, d1.Target.CHAPSecret) {
		t.Fatalf("script of a powered-off node = %d\n%s", code, script)
	}
	if err := hil.New(s.cfg.HIL.URL, nil).PowerOn(ctx, hil.Credentials{User: alice.User, Password: alice.Password}, "node-01"); err != nil {
		t.Fatal(err)
	}
	// The API listener serves no boot scripts.
	if code, body := s.getFrom(s.cfg.API.Listen, "/boot/52:54:00:00:01:01.ipxe"); code != 404 || strings.Contains(body, d1.Target.CHAPSecret) {
		t.Fatalf("GET /boot/... on the API listener = %d %s, want 404", code, body)
	}
	// The node's script names its target; a real initiator logs in with CHAP.
	code, script := s.get("/boot/52:54:00:00:01:01.ipxe")
	if code != 200 || !strings.Contains(script, d1.Target.IQN) || !strings.Contains(script, "sanboot") {
		t.Fatalf("GET script = %d\n%s", code, script)
	}
	// Operators see the script by node name through the API, secret hidden;
	// others do not see it at all.
	for _, c := range []struct {
		user, pw string
		want     int
	}{{"alice", "alice-secret", 200}, {"bob", "bob-secret", 403}, {"alice", "wrong", 401}} {
		req, _ := http.NewRequest("GET", "http://"+s.cfg.API.Listen+"/api/v1/projects/tenant-a/nodes/node-01/boot.ipxe", nil)
		req.SetBasicAuth(c.user, c.pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || strings.Contains(string(b), d1.Target.CHAPSecret) ||
			c.want == 200 && (!strings.Contains(string(b), d1.Target.IQN) || !strings.Contains(string(b), "hidden-by-bmi")) {
			t.Fatalf("script by name as %s = %d, want %d without the secret:\n%s", c.user, resp.StatusCode, c.want, b)
		}
	}
	// The secret itself: administrators who ask, no one else.
	for _, c := range []struct {
		user, pw string
		want     int
	}{{"hiladmin", "admin-secret", 200}, {"alice", "alice-secret", 403}} {
		req, _ := http.NewRequest("GET", "http://"+s.cfg.API.Listen+"/api/v1/projects/tenant-a/targets/node-01/credentials", nil)
		req.SetBasicAuth(c.user, c.pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || (c.want == 200) != strings.Contains(string(b), d1.Target.CHAPSecret) {
			t.Fatalf("credentials as %s = %d %s, want %d", c.user, resp.StatusCode, b, c.want)
		}
	}
	if !strings.Contains(script, "set initiator-iqn "+s.nodeInitiator("node-01")) {
		t.Fatalf("script sets no initiator name %s:\n%s", s.nodeInitiator("node-01"), script)
	}
	s.d.sec.syncAll(ctx) // the test calls the core directly, not through the API
	out, err := exec.Command(readcap, "-i", s.nodeInitiator("node-01"), iscsiURL(s.cfg.ISCSI.Portal, *d1.Target)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "67108864") {
		t.Fatalf("iscsi-readcapacity16: %v\n%s", err, out)
	}
	bad := *d1.Target
	bad.CHAPSecret = "wrong-secret-123"
	if out, err := exec.Command(readcap, "-i", s.nodeInitiator("node-01"), iscsiURL(s.cfg.ISCSI.Portal, bad)).CombinedOutput(); err == nil {
		t.Fatalf("login with a wrong CHAP secret succeeded:\n%s", out)
	}
	// The right secret under another initiator name (libiscsi's default,
	// or not an IQN at all) is refused: the disk's ACL names its node.
	for _, name := range []string{"", "not-an-iqn", s.nodeInitiator("node-02")} {
		args := []string{iscsiURL(s.cfg.ISCSI.Portal, *d1.Target)}
		if name != "" {
			args = append([]string{"-i", name}, args...)
		}
		if out, err := exec.Command(readcap, args...).CombinedOutput(); err == nil {
			t.Fatalf("login with the stolen secret as initiator %q succeeded:\n%s", name, out)
		}
	}
	s.checkTimeline(t, "node-01")
	// Node 1 writes a record; its snapshot carries it to node 2's disk.
	if _, err := svc.CreateSnapshot(ctx, alice, "tenant-a", "node-01", "node1-snap"); err != nil {
		t.Fatal(err)
	}
	d2, err := svc.Provision(ctx, alice, "tenant-a", "node-02", "node1-snap", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if info := rbd(t, s.conf, s.pool, "info", d2.CephName); !strings.Contains(info, "parent:") {
		t.Fatalf("node-02's disk is not a clone:\n%s", info)
	}
	// The secrets are sealed in the state DB; rotation: the old secret
	// stops working, the new one works.
	if raw := rawSecrets(t, s.cfg.State.Path); strings.Contains(raw, d1.Target.CHAPSecret) || !strings.Contains(raw, "enc1:") {
		t.Fatalf("CHAP secrets in the state DB are not sealed: %s", raw)
	}
	rot, err := s.d.sec.RotateSecret(ctx, alice, "tenant-a", "node-01")
	if err != nil || rot.CHAPSecret == d1.Target.CHAPSecret {
		t.Fatalf("RotateSecret = %+v, %v", rot, err)
	}
	if out, err := exec.Command(readcap, "-i", s.nodeInitiator("node-01"), iscsiURL(s.cfg.ISCSI.Portal, *d1.Target)).CombinedOutput(); err == nil {
		t.Fatalf("login with the secret from before the rotation succeeded:\n%s", out)
	}
	if out, err := exec.Command(readcap, "-i", s.nodeInitiator("node-01"), iscsiURL(s.cfg.ISCSI.Portal, rot)).CombinedOutput(); err != nil {
		t.Fatalf("login with the rotated secret: %v\n%s", err, out)
	}
	if _, script := s.get("/boot/52:54:00:00:01:01.ipxe"); !strings.Contains(script, rot.CHAPSecret) {
		t.Fatalf("the script does not carry the rotated secret:\n%s", script)
	}
	d1.Target.CHAPSecret = rot.CHAPSecret
	// Restart: targets come back from the database. A key file open to
	// others, or missing, stops bmid with one line.
	s.stop()
	keyFile := filepath.Join(filepath.Dir(s.cfg.State.Path), "secret.key")
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, s.cfg, logging.Discard()); err == nil || !strings.Contains(err.Error(), "mode 0644") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("New with a world-readable key file = %v, want one line naming the mode", err)
	}
	if err := os.Rename(keyFile, keyFile+".away"); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, s.cfg, logging.Discard()); err == nil || !strings.Contains(err.Error(), "restore the file") {
		t.Fatalf("New without the key file = %v, want a refusal", err)
	}
	if err := os.Rename(keyFile+".away", keyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	svc = s.d.Service()
	if out, err := exec.Command(readcap, "-i", s.nodeInitiator("node-02"), iscsiURL(s.cfg.ISCSI.Portal, *d2.Target)).CombinedOutput(); err != nil {
		t.Fatalf("after restart: %v\n%s", err, out)
	}
	// One bmid per state database: a second one is refused with one line
	// naming the first (what makes fencing a disk's old lock owner safe).
	if other, err := New(ctx, s.cfg, logging.Discard()); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("another bmid (pid %d)", os.Getpid())) {
		if other != nil {
			other.close()
		}
		t.Fatalf("a second bmid on the same state database: %v", err)
	}
	for _, n := range []string{"node-02", "node-01"} {
		if err := svc.Deprovision(ctx, alice, "tenant-a", n, "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	if nets := s.nicNetworks("node-01", "eth0"); len(nets) != 0 {
		t.Fatalf("node-01/eth0 still on %v after deprovision", nets)
	}
	if code, _ := s.get("/boot/52:54:00:00:01:01.ipxe"); code != 200 {
		t.Fatalf("script of a deprovisioned node: %d", code)
	}
	if out, err := exec.Command(readcap, "-i", s.nodeInitiator("node-01"), iscsiURL(s.cfg.ISCSI.Portal, *d1.Target)).CombinedOutput(); err == nil {
		t.Fatalf("the deprovisioned node's target still answers:\n%s", out)
	}
	for _, im := range []string{"node1-snap", "debian"} {
		if err := svc.RemoveImage(ctx, alice, "tenant-a", im); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := svc.Reconcile(ctx, admin, false)
	if err != nil || len(rep.OrphanImages)+len(rep.MissingImages)+len(rep.StrayTargets)+len(rep.Errors) != 0 {
		t.Fatalf("Reconcile = %+v, %v", rep, err)
	}
	if left := rbd(t, s.conf, s.pool, "ls"); strings.Contains(left, s.cfg.UID+"img") || strings.Contains(left, s.cfg.UID+"tmp") {
		t.Fatalf("BMI images left in the pool:\n%s", left)
	}
	if snaps := rbd(t, s.conf, s.pool, "snap", "ls", golden); strings.TrimSpace(snaps) != "" {
		t.Fatalf("snapshots left on the golden image:\n%s", snaps)
	}
}

// rawSecrets returns the chap_secret column of the state DB as stored.
func rawSecrets(t *testing.T, dbPath string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT chap_secret FROM targets`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var all []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		all = append(all, v)
	}
	return strings.Join(all, " ")
}

// checkTimeline reads node's boot timeline through the API as alice: the
// script bmid served, the real initiator's login (its name, address and
// ISID, not iPXE's) and the refused one are on it, no secret is.
func (s *site) checkTimeline(t *testing.T, node string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.cfg.API.Listen+"/api/v1/projects/tenant-a/nodes/"+node+"/timeline", nil)
	req.SetBasicAuth("alice", "alice-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tl api.NodeTimeline
	if err := json.NewDecoder(resp.Body).Decode(&tl); err != nil || resp.StatusCode != 200 {
		t.Fatalf("timeline of %s: %d %v", node, resp.StatusCode, err)
	}
	var script, login, refused bool
	for _, ev := range tl.Events {
		switch {
		case ev.Step == "ipxe-script-served":
			script = true
		case ev.Step == "iscsi-login" && ev.Client == "os" && ev.Initiator == s.nodeInitiator(node) &&
			ev.Remote == "127.0.0.1" && len(ev.Session) == 12 && strings.HasPrefix(ev.Detail, "target iqn."):
			login = true
		case ev.Step == "iscsi-login-refused" && strings.Contains(ev.Detail, "CHAP"):
			refused = true
		}
	}
	if !script || !login || !refused {
		t.Fatalf("timeline of %s: script %v, initiator login %v, refused login %v, want all:\n%+v", node, script, login, refused, tl.Events)
	}
}
