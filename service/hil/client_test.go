package hil_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/hilmock"
)

func TestShowNodeAndLists(t *testing.T) {
	m := startMock(t, nil)
	c := hil.New(m.srv.URL(), nil)
	ctx := context.Background()

	n, err := c.ShowNode(ctx, alice, "node-01")
	if err != nil {
		t.Fatal(err)
	}
	nic, err := n.NIC("eth0")
	if err != nil || n.Project != "tenant-a" || nic.MAC != "52:54:00:00:01:01" || nic.Port != "" {
		t.Fatalf("node %+v nic %+v err %v", n, nic, err)
	}
	if _, err := n.NIC("eth9"); !errors.Is(err, fault.ErrNotFound) || !strings.Contains(err.Error(), `"eth9"`) {
		t.Fatalf("missing nic: %v", err)
	}
	if n, err := c.ShowNode(ctx, admin, "node-03"); err != nil || n.NICs[1].Port != "tap-node-03b" || n.NICs[1].Switch != "bmilab-br0" {
		t.Fatalf("admin view %+v %v", n, err)
	}
	if n, err := c.ShowNode(ctx, bob, "node-04"); err != nil || n.Project != "" {
		t.Fatalf("free node %+v %v", n, err)
	}
	if _, err := c.ShowNode(ctx, alice, "nope"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	if _, err := c.ShowNode(ctx, bob, "node-01"); !errors.Is(err, fault.ErrForbidden) {
		t.Fatalf("non-member: %v", err)
	}
	if _, err := c.ShowNode(ctx, wrongpw, "node-01"); !errors.Is(err, fault.ErrUnauthenticated) {
		t.Fatalf("wrong password: %v", err)
	}
	if got, err := c.ListProjectNodes(ctx, alice, "tenant-a"); err != nil || !slices.Equal(got, []string{"node-01", "node-02"}) {
		t.Fatalf("project nodes %v %v", got, err)
	}
	if got, err := c.ListFreeNodes(ctx, alice); err != nil || !slices.Equal(got, []string{"node-04"}) {
		t.Fatalf("free nodes %v %v", got, err)
	}
	nw, err := c.ShowNetwork(ctx, alice, "tenant-a-net")
	if vlan, ok := nw.VLAN(); err != nil || !ok || vlan != "201" || nw.Owner != "tenant-a" {
		t.Fatalf("network %+v %v", nw, err)
	}
	if _, err := c.ShowNetwork(ctx, bob, "tenant-a-net"); !errors.Is(err, fault.ErrForbidden) {
		t.Fatalf("network without access: %v", err)
	}
}

func TestPrincipal(t *testing.T) {
	m := startMock(t, nil)
	c := hil.New(m.srv.URL()+"/v0/", nil)
	ctx := context.Background()
	tests := map[string]struct {
		cred    hil.Credentials
		authErr error
		admin   bool
		adminE  error
		project string
		projErr error
	}{
		"admin":           {cred: admin, admin: true, project: "tenant-b"},
		"member":          {cred: alice, project: "tenant-a"},
		"non-member":      {cred: bob, project: "tenant-a", projErr: fault.ErrForbidden},
		"unknown project": {cred: alice, project: "nope", projErr: fault.ErrNotFound},
		"wrong password":  {cred: wrongpw, authErr: fault.ErrUnauthenticated, adminE: fault.ErrUnauthenticated, project: "tenant-a", projErr: fault.ErrUnauthenticated},
		"unknown user":    {cred: hil.Credentials{User: "ghost", Password: "x"}, authErr: fault.ErrUnauthenticated, adminE: fault.ErrUnauthenticated, project: "tenant-a", projErr: fault.ErrUnauthenticated},
		"no user":         {cred: hil.Credentials{}, authErr: fault.ErrUnauthenticated, adminE: fault.ErrUnauthenticated, project: "tenant-a", projErr: fault.ErrUnauthenticated},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := c.Authenticate(ctx, tc.cred); !errIs(err, tc.authErr) {
				t.Errorf("Authenticate: %v, want %v", err, tc.authErr)
			}
			isAdmin, err := c.IsAdmin(ctx, tc.cred)
			if !errIs(err, tc.adminE) || isAdmin != tc.admin {
				t.Errorf("IsAdmin: %t %v, want %t %v", isAdmin, err, tc.admin, tc.adminE)
			}
			if err := c.CheckProjectAccess(ctx, tc.cred, tc.project); !errIs(err, tc.projErr) {
				t.Errorf("CheckProjectAccess(%s): %v, want %v", tc.project, err, tc.projErr)
			}
		})
	}
}

func errIs(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

func TestConnectDetachWaits(t *testing.T) {
	g := newGate()
	m := startMock(t, g)
	c := hil.New(m.srv.URL(), nil, hil.WithPolling(time.Millisecond, 20*time.Millisecond))
	ctx := context.Background()

	// The switch is held: the client must not return before it is applied.
	released := make(chan struct{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(released)
		close(g.open)
	}()
	a, err := c.ConnectNetwork(ctx, alice, "node-01", "eth0", "tenant-a-net", "")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-released:
	default:
		t.Fatal("ConnectNetwork returned before the switch applied the change")
	}
	if a.Status != hil.StatusDone || a.NewNetwork != "tenant-a-net" || a.Channel != "vlan/native" || a.Node != "node-01" || a.NIC != "eth0" {
		t.Fatalf("action %+v", a)
	}
	if got := g.VLANs("node-01", "eth0"); !slices.Equal(got, []int{201}) {
		t.Fatalf("VLANs %v, want [201]", got)
	}
	n, _ := c.ShowNode(ctx, alice, "node-01")
	if n.NICs[0].Networks["vlan/native"] != "tenant-a-net" {
		t.Fatalf("node networks %v", n.NICs[0].Networks)
	}
	if _, err := c.ConnectNetwork(ctx, alice, "node-01", "eth0", "tenant-a-net", ""); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("connect twice: %v, want conflict", err)
	}
	if _, err := c.ConnectNetwork(ctx, alice, "node-01", "eth0", "bmi-provision", "vlan/100"); err != nil {
		t.Fatalf("tagged connect: %v", err)
	}
	a, err = c.DetachNetwork(ctx, alice, "node-01", "eth0", "tenant-a-net")
	if err != nil || a.Status != hil.StatusDone || a.NewNetwork != "" {
		t.Fatalf("detach: %+v %v", a, err)
	}
	if got := g.VLANs("node-01", "eth0"); !slices.Equal(got, []int{100}) {
		t.Fatalf("VLANs after detach %v, want [100]", got)
	}
	if _, err := c.DetachNetwork(ctx, alice, "node-01", "eth0", "tenant-a-net"); !errors.Is(err, fault.ErrInvalid) {
		t.Fatalf("detach of a network not attached: %v, want invalid", err)
	}
	if _, err := c.ConnectNetwork(ctx, bob, "node-01", "eth0", "public", ""); !errors.Is(err, fault.ErrForbidden) {
		t.Fatalf("non-member connect: %v, want forbidden", err)
	}
	if _, err := c.ConnectNetwork(ctx, alice, "node-01", "eth0", "tenant-b-net", ""); !errors.Is(err, fault.ErrConflict) {
		t.Fatalf("network without access: %v, want conflict (ProjectMismatchError)", err)
	}
	if _, err := c.ConnectNetwork(ctx, alice, "node-01", "eth7", "public", ""); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("unknown nic: %v", err)
	}
}

func TestConnectError(t *testing.T) {
	g := newGate()
	g.failVLAN = 300
	close(g.open)
	m := startMock(t, g)
	c := hil.New(m.srv.URL(), nil, hil.WithPolling(time.Millisecond, 10*time.Millisecond))
	ctx := context.Background()
	a, err := c.ConnectNetwork(ctx, alice, "node-02", "eth0", "public", "")
	if !errors.Is(err, fault.ErrUnavailable) || a.Status != hil.StatusError || !strings.Contains(err.Error(), "refused vlan 300") {
		t.Fatalf("connect through a failing switch: %+v %v", a, err)
	}
	n, _ := c.ShowNode(ctx, alice, "node-02")
	if len(n.NICs[0].Networks) != 0 {
		t.Fatalf("failed action changed the node: %v", n.NICs[0].Networks)
	}
	// The NIC is free again: the next action goes through.
	if _, err := c.ConnectNetwork(ctx, alice, "node-02", "eth0", "tenant-a-net", ""); err != nil {
		t.Fatalf("connect after an ERROR: %v", err)
	}
}

func TestWaitTimeout(t *testing.T) {
	g := newGate() // never released: the action stays PENDING
	m := startMock(t, g)
	ctx := context.Background()
	tests := map[string]struct {
		opts []hil.Option
		ctx  func() (context.Context, context.CancelFunc)
	}{
		"action timeout": {opts: []hil.Option{hil.WithActionTimeout(150 * time.Millisecond)},
			ctx: func() (context.Context, context.CancelFunc) { return context.WithCancel(ctx) }},
		"context deadline": {ctx: func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 150*time.Millisecond) }},
	}
	nics := []string{"eth0", "eth1"}
	i := 0
	for name, tc := range tests {
		nic := nics[i]
		i++
		t.Run(name, func(t *testing.T) {
			c := hil.New(m.srv.URL(), nil, append(tc.opts, hil.WithPolling(5*time.Millisecond, 20*time.Millisecond))...)
			cctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			a, err := c.ConnectNetwork(cctx, bob, "node-03", nic, "tenant-b-net", "")
			if !errors.Is(err, fault.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err %v, want unavailable wrapping DeadlineExceeded", err)
			}
			if !strings.Contains(err.Error(), "still PENDING") || !strings.Contains(err.Error(), `"node-03"`) || a.Status != hil.StatusPending {
				t.Fatalf("err %q, action %+v", err, a)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("wait took %s", took)
			}
			// HIL still holds the action: a second one on the NIC is refused.
			_, err = c.StartConnectNetwork(ctx, bob, "node-03", nic, "public", "")
			if !errors.Is(err, fault.ErrConflict) {
				t.Fatalf("second action: %v, want conflict", err)
			}
		})
	}
}

func TestPower(t *testing.T) {
	m := startMock(t, nil)
	c := hil.New(m.srv.URL(), nil)
	ctx := context.Background()
	if err := c.PowerCycle(ctx, alice, "node-01", true); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOff(ctx, alice, "node-01"); err != nil {
		t.Fatal(err)
	}
	if s, err := c.PowerStatus(ctx, alice, "node-01"); err != nil || s != "off" {
		t.Fatalf("status %q %v", s, err)
	}
	if err := c.PowerOn(ctx, alice, "node-01"); err != nil {
		t.Fatal(err)
	}
	if s, err := c.PowerStatus(ctx, alice, "node-01"); err != nil || s != "on" {
		t.Fatalf("status %q %v", s, err)
	}
	if err := c.SetBootDevice(ctx, alice, "node-01", "disk"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetBootDevice(ctx, alice, "node-01", "floppy"); !errors.Is(err, fault.ErrInvalid) {
		t.Fatalf("bad boot device: %v", err)
	}
	if err := c.PowerCycle(ctx, bob, "node-01", false); !errors.Is(err, fault.ErrForbidden) {
		t.Fatalf("non-member power cycle: %v", err)
	}
	if err := c.PowerOff(ctx, alice, "nope"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	var got []string
	for _, call := range m.power.Calls() {
		got = append(got, call.String())
	}
	want := []string{"SetBootDevice(node-01, pxe)", "PowerCycle(node-01, force=true)", "PowerOff(node-01)",
		"PowerStatus(node-01)", "PowerOn(node-01)", "PowerStatus(node-01)", "SetBootDevice(node-01, disk)"}
	if !slices.Equal(got, want) {
		t.Fatalf("power driver calls\n got %q\nwant %q", got, want)
	}
}

// TestNoPasswordInLogs: debug logs of calls, including refused ones, never
// show a password.
func TestNoPasswordInLogs(t *testing.T) {
	m := startMock(t, nil)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := hil.New(m.srv.URL(), nil, hil.WithLogger(log))
	ctx := context.Background()
	c.ShowNode(ctx, alice, "node-01")
	c.ShowNode(ctx, wrongpw, "node-01")
	c.PowerCycle(ctx, bob, "node-01", false)
	log.Info("credentials", "cred", alice)
	if buf.Len() == 0 {
		t.Fatal("nothing logged")
	}
	for _, pw := range []string{"alice-secret", "wrong", "bob-secret"} {
		if strings.Contains(buf.String(), pw) {
			t.Fatalf("password %q in logs:\n%s", pw, buf.String())
		}
	}
	if _, ok := hil.IsHILError(c.PowerOff(ctx, alice, "nope")); !ok {
		t.Fatal("HIL refusal not a *hil.Error")
	}
}

var _ hilmock.SwitchDriver = (*gate)(nil)
