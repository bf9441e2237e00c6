//go:build ceph_preview

package daemon

import (
	"context"
	"errors"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hil"
)

// scrape returns the text of GET /metrics.
func (s *site) scrape() string {
	s.t.Helper()
	code, body := s.get("/metrics")
	if code != http.StatusOK {
		s.t.Fatalf("GET /metrics = %d", code)
	}
	return body
}

// sample returns the value of the series name with (at least) labels, or
// -1 when there is none.
func sample(body, name string, labels ...string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			return v
		}
	}
	return -1
}

// nextEvent reads the next event of st, failing after a generous bound.
func nextEvent(t *testing.T, st *client.EventStream) api.Event {
	t.Helper()
	type res struct {
		ev  api.Event
		err error
	}
	c := make(chan res, 1)
	go func() { ev, err := st.Next(); c <- res{ev, err} }()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("event stream: %v", r.err)
		}
		return r.ev
	case <-time.After(90 * time.Second):
		t.Fatal("no event within 90 s")
	}
	return api.Event{}
}

// TestMetricsAndEvents runs a real bmid (real Ceph, real iSCSI target)
// through a provisioning, a boot script fetch and real iSCSI logins by
// libiscsi, and checks that /metrics moved on every plane it touched and
// that the event stream told each caller what it may see, and nothing
// else: no other project's events, no secret.
func TestMetricsAndEvents(t *testing.T) {
	ctx := context.Background()
	readcap := testenv.RequireCommand(t, "iscsi-readcapacity16", "libiscsi-bin")
	s := &site{t: t, cfg: siteConfig(t, newUID(t), startHIL(t), t.TempDir())}
	s.conf, s.pool = s.cfg.Ceph.Conf, s.cfg.Ceph.Pool
	s.cfg.Metrics.Gateway, s.cfg.Events.MaxClients = "gw-test", 3
	golden := s.cfg.UID + "-golden"
	rbd(t, s.conf, s.pool, "create", "--size", "64M", golden)
	t.Cleanup(func() { cephtest.RBD(s.conf, s.pool, "rm", golden) })
	s.start()
	stopped := false
	defer func() {
		if !stopped {
			s.stop()
		}
	}()
	svc := s.d.Service()
	for _, p := range []string{"tenant-a", "tenant-b"} {
		if _, err := svc.CreateProject(ctx, admin, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.ImportImage(ctx, admin, "tenant-a", golden, core.ImportOptions{Name: "debian"}); err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.cfg.API.Listen
	cl := func(who core.Principal) *client.Client {
		c, err := client.New(base, who.User, who.Password)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca, cb := cl(alice), cl(core.Principal{User: "bob", Password: "bob-secret"})
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A non-member may not follow another project, and a wrong password
	// follows nothing.
	if _, err := cb.Follow(sctx, api.EventFilter{Project: "tenant-a"}); !errors.Is(err, fault.ErrForbidden) {
		t.Fatalf("bob follows tenant-a: %v, want forbidden", err)
	}
	if _, err := cl(core.Principal{User: "alice", Password: "wrong"}).Follow(sctx, api.EventFilter{}); err == nil {
		t.Fatal("a wrong password follows the stream")
	}
	sa, err := ca.Follow(sctx, api.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := cb.Follow(sctx, api.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := ca.Follow(sctx, api.EventFilter{Project: "tenant-a", Node: "node-01"})
	if err != nil {
		t.Fatal(err)
	}
	// events.max_clients is 3: a fourth stream is refused with 503.
	req, _ := http.NewRequest("GET", base+"/api/v1/events", nil)
	req.SetBasicAuth(alice.User, alice.Password.Reveal())
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("fourth stream: %v %v, want 503", resp, err)
	} else {
		resp.Body.Close()
	}

	// Provision through the API, power on, fetch the boot script, log in.
	d1, _, err := ca.Provision(ctx, "tenant-a", "node-01", api.ProvisionRequest{Image: "debian", NIC: "eth0"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := hil.New(s.cfg.HIL.URL, nil).PowerOn(ctx, hil.Credentials{User: alice.User, Password: alice.Password}, "node-01"); err != nil {
		t.Fatal(err)
	}
	if code, script := s.get("/boot/52:54:00:00:01:01.ipxe"); code != 200 || !strings.Contains(script, "sanboot") {
		t.Fatalf("script: %d\n%s", code, script)
	}
	cred, err := s.d.sec.Credentials(ctx, admin, "tenant-a", "node-01")
	if err != nil {
		t.Fatal(err)
	}
	secret := cred.CHAPSecret
	tgt := core.Target{IQN: cred.IQN, CHAPUser: cred.CHAPUser, CHAPSecret: secret}
	if d1.Target == nil || d1.Target.IQN != tgt.IQN {
		t.Fatalf("provisioned disk: %+v", d1)
	}
	out, err := exec.Command(readcap, "-i", s.nodeInitiator("node-01"), iscsiURL(s.cfg.ISCSI.Portal, tgt)).CombinedOutput()
	if err != nil {
		t.Fatalf("iscsi-readcapacity16: %v\n%s", err, out)
	}
	bad := tgt
	bad.CHAPSecret = "wrong-secret-123"
	if out, err := exec.Command(readcap, "-i", s.nodeInitiator("node-01"), iscsiURL(s.cfg.ISCSI.Portal, bad)).CombinedOutput(); err == nil {
		t.Fatalf("login with a wrong secret succeeded:\n%s", out)
	}
	// A Ceph error: importing an image Ceph does not have.
	if _, err := svc.ImportImage(ctx, admin, "tenant-a", s.cfg.UID+"-missing", core.ImportOptions{}); err == nil {
		t.Fatal("import of a missing image succeeded")
	}
	// Then something in bob's project: the first event bob sees.
	if _, err := svc.ImportImage(ctx, admin, "tenant-b", golden, core.ImportOptions{Name: "bobs"}); err != nil {
		t.Fatal(err)
	}

	// alice: the provisioning's start and end, then the script fetch.
	var seen []string
	for len(seen) < 3 {
		ev := nextEvent(t, sa)
		if ev.Project != "tenant-a" {
			t.Fatalf("alice got an event of project %q: %+v", ev.Project, ev)
		}
		switch {
		case ev.Type == api.EventOperation && ev.Operation.Kind == "provision":
			seen = append(seen, "provision "+ev.Operation.State)
		case ev.Type == api.EventBoot && ev.Node == "node-01":
			seen = append(seen, "boot "+ev.Step)
		}
	}
	if want := "provision running,provision done,boot ipxe-script-served"; strings.Join(seen, ",") != want {
		t.Fatalf("alice's events: %v, want %s", seen, want)
	}
	// The node filter: only node-01's boot steps.
	if ev := nextEvent(t, sn); ev.Type != api.EventBoot || ev.Node != "node-01" || ev.Step != "ipxe-script-served" {
		t.Fatalf("node-01's stream: %+v", ev)
	}
	// bob: nothing of tenant-a, first his own import.
	if ev := nextEvent(t, sb); ev.Project != "tenant-b" || ev.Operation == nil || ev.Operation.Kind != "import" {
		t.Fatalf("bob's first event: %+v, want tenant-b's import", ev)
	}

	m := s.scrape()
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"bmi_iscsi_logins_total", []string{`result="ok"`, `type="normal"`}},
		{"bmi_iscsi_logins_total", []string{`result="auth_failed"`}},
		{"bmi_iscsi_commands_total", []string{`op="other"`, `status="good"`}},
		{"bmi_iscsi_command_duration_seconds_count", []string{`op="other"`}},
		{"bmi_iscsi_targets", nil},
		{"bmi_boot_http_requests_total", []string{`kind="script"`, `code="200"`}},
		{"bmi_boot_steps_total", []string{`step="ipxe-script-served"`}},
		{"bmi_operations_total", []string{`kind="provision"`, `state="done"`}},
		{"bmi_operations_total", []string{`kind="import"`, `state="started"`}},
		{"bmi_operation_duration_seconds_count", []string{`kind="provision"`}},
		{"bmi_ceph_errors_total", []string{`kind="not_found"`}},
		{"go_sql_open_connections", []string{`db_name="state"`}},
	} {
		if v := sample(m, c.name, append(c.labels, `gateway="gw-test"`)...); v < 1 {
			t.Errorf("%s%v = %v after the run, want >= 1", c.name, c.labels, v)
		}
	}
	if v := sample(m, "bmi_iscsi_sessions", `gateway="gw-test"`); v != 0 {
		t.Errorf("bmi_iscsi_sessions = %v after libiscsi logged out, want 0", v)
	}
	for _, bad := range []string{secret, tgt.IQN, "node-01", "tenant-a", "52:54:00"} {
		if strings.Contains(m, bad) {
			t.Errorf("/metrics carries %q", bad)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", m)
	}
	// Leave the pool as found.
	if err := svc.Deprovision(ctx, alice, "tenant-a", "node-01", "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, im := range [][2]string{{"tenant-a", "debian"}, {"tenant-b", "bobs"}} {
		if err := svc.RemoveImage(ctx, admin, im[0], im[1]); err != nil {
			t.Fatal(err)
		}
	}

	// bmid shuts down: the open streams end (and do not hold the shutdown).
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := sa.Next(); err != nil {
				ended <- err
				return
			}
		}
	}()
	s.stop()
	stopped = true
	select {
	case err := <-ended:
		if !errors.Is(err, client.ErrStreamEnded) {
			t.Fatalf("stream after shutdown: %v, want ErrStreamEnded", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the event stream did not end with bmid")
	}
}
