package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/service/fault"
)

// fakeGateways records a rolling restart's calls; settle[k] is what the
// k-th look at the site answers (nil after the list's end).
type fakeGateways struct {
	calls   []string
	settle  []error
	looks   int
	readyOf map[int]error
}

func (f *fakeGateways) settled(context.Context) error {
	f.calls = append(f.calls, "settled")
	k := f.looks
	f.looks++
	if k < len(f.settle) {
		return f.settle[k]
	}
	return nil
}

func (f *fakeGateways) down(_ context.Context, i int, mode RestartMode) (int, error) {
	f.calls = append(f.calls, fmt.Sprintf("down %d %s", i, mode))
	return 100 + i, nil
}

func (f *fakeGateways) up(_ context.Context, i int, binary string) (int, string, error) {
	f.calls = append(f.calls, fmt.Sprintf("up %d %s", i, binary))
	return 200 + i, binary, nil
}

func (f *fakeGateways) ready(_ context.Context, i int) error {
	f.calls = append(f.calls, fmt.Sprintf("ready %d", i))
	return f.readyOf[i]
}

var errUnsettled = errors.New("unsettled")

// TestRollingRestart: one gateway at a time (down, up, ready), and the
// next only once the site was settled for the required looks in a row;
// an unsettled look in between starts the count again.
func TestRollingRestart(t *testing.T) {
	u := errUnsettled
	tests := []struct {
		name   string
		n      int
		settle []error
		want   []string
	}{
		{"settled at once", 2, nil, []string{
			"settled", "settled",
			"down 1 upgrade", "up 1 /new", "ready 1", "settled", "settled",
			"down 2 upgrade", "up 2 /new", "ready 2", "settled", "settled"}},
		{"waits for two settled looks in a row", 2, []error{u, nil, u, nil, nil, u, nil, u, u, nil}, []string{
			"settled", "settled", "settled", "settled", "settled",
			"down 1 upgrade", "up 1 /new", "ready 1", "settled", "settled", "settled", "settled", "settled", "settled",
			"down 2 upgrade", "up 2 /new", "ready 2", "settled", "settled"}},
		{"three gateways", 3, nil, []string{
			"settled", "settled",
			"down 1 upgrade", "up 1 /new", "ready 1", "settled", "settled",
			"down 2 upgrade", "up 2 /new", "ready 2", "settled", "settled",
			"down 3 upgrade", "up 3 /new", "ready 3", "settled", "settled"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeGateways{settle: tc.settle}
			r := roller{ops: f, n: tc.n, looks: 2, timeout: time.Minute}
			steps, err := r.run(context.Background(), RestartUpgrade, "/new")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.calls, tc.want) {
				t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(f.calls, "\n"), strings.Join(tc.want, "\n"))
			}
			if len(steps) != tc.n {
				t.Fatalf("%d steps, want %d", len(steps), tc.n)
			}
			for i, st := range steps {
				if st.ID != GatewayID(i+1) || st.OldPid != 101+i || st.NewPid != 201+i || st.Binary != "/new" {
					t.Fatalf("step %d: %+v", i, st)
				}
			}
		})
	}
}

// TestRollingRestartStops: a site that does not settle before the restart
// is left alone; a gateway that does not get ready, or after which the
// site does not settle, ends the restart there: the next gateway is
// never taken down.
func TestRollingRestartStops(t *testing.T) {
	u := errUnsettled
	never := slices.Repeat([]error{u}, 1000)
	tests := []struct {
		name    string
		settle  []error
		readyOf map[int]error
		want    []string
		steps   int
	}{
		{"unsettled before", never, nil, []string{"settled"}, 0},
		{"gateway 1 never ready", nil, map[int]error{1: fault.ErrUnavailable},
			[]string{"settled", "settled", "down 1 kill", "up 1 ", "ready 1"}, 0},
		{"unsettled after gateway 1", append([]error{nil, nil}, never...), nil,
			[]string{"settled", "settled", "down 1 kill", "up 1 ", "ready 1", "settled"}, 0},
		{"unsettled after gateway 2", append([]error{nil, nil, nil, nil}, never...), nil,
			[]string{"settled", "settled", "down 1 kill", "up 1 ", "ready 1", "settled", "settled",
				"down 2 kill", "up 2 ", "ready 2", "settled"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeGateways{settle: tc.settle, readyOf: tc.readyOf}
			// A timeout of 0: the first unsettled look ends the wait.
			r := roller{ops: f, n: 2, looks: 2}
			steps, err := r.run(context.Background(), RestartKill, "")
			if err == nil {
				t.Fatal("no error")
			}
			if !slices.Equal(f.calls, tc.want) || len(steps) != tc.steps {
				t.Fatalf("calls %q, %d steps; want %q, %d steps (err %v)", f.calls, len(steps), tc.want, tc.steps, err)
			}
		})
	}
}

// TestCheckLayout: the floating addresses must be held where keepalived
// keeps them with every gateway healthy, each by one gateway; other
// addresses (the gateways' fixed ones) do not matter.
func TestCheckLayout(t *testing.T) {
	l := twoGatewayLab(t)
	want := l.floatingLayout()
	exp := map[string]string{
		"10.77.0.1/24": "g1", "10.77.10.1/24": "g1", "10.77.11.1/24": "g1",
		"10.77.0.21/24": "g1", "10.77.10.21/24": "g1", "10.77.11.21/24": "g1",
		"10.77.0.22/24": "g2", "10.77.10.22/24": "g2", "10.77.11.22/24": "g2",
	}
	if fmt.Sprint(want) != fmt.Sprint(exp) {
		t.Fatalf("layout %v, want %v", want, exp)
	}
	good := map[string][]string{
		"g1": {"10.77.250.11/24", "10.77.0.11/24", "10.77.0.1/24", "10.77.10.1/24", "10.77.11.1/24", "10.77.0.21/24", "10.77.10.21/24", "10.77.11.21/24"},
		"g2": {"10.77.250.12/24", "10.77.0.12/24", "10.77.0.22/24", "10.77.10.22/24", "10.77.11.22/24"},
	}
	tests := []struct {
		name string
		held func(map[string][]string)
		err  string
	}{
		{"settled", func(map[string][]string) {}, ""},
		{"held by the other", func(h map[string][]string) {
			h["g1"] = slices.DeleteFunc(h["g1"], func(a string) bool { return a == "10.77.10.1/24" })
			h["g2"] = append(h["g2"], "10.77.10.1/24")
		}, "gateway g2 holds 10.77.10.1/24, not yet gateway g1"},
		{"held by nobody", func(h map[string][]string) { h["g2"] = h["g2"][:2] }, "no gateway holds 10.77.0.22/24"},
		{"held twice", func(h map[string][]string) { h["g2"] = append(h["g2"], "10.77.0.21/24") }, "gateways g1, g2 all hold 10.77.0.21/24"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string][]string{"g1": slices.Clone(good["g1"]), "g2": slices.Clone(good["g2"])}
			tc.held(h)
			err := checkLayout(want, h)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("checkLayout: %v, want %q", err, tc.err)
			}
		})
	}
}

func TestParseAddrs(t *testing.T) {
	out := `1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
5: vlan4000@if6    inet 10.77.250.11/24 scope global vlan4000\       valid_lft forever preferred_lft forever
7: vlan100@if8    inet 10.77.0.11/24 scope global vlan100\       valid_lft forever preferred_lft forever
7: vlan100@if8    inet 10.77.0.1/24 scope global secondary vlan100\       valid_lft forever preferred_lft forever
`
	got := parseAddrs(out)
	want := []string{"127.0.0.1/8", "10.77.250.11/24", "10.77.0.11/24", "10.77.0.1/24"}
	if !slices.Equal(got, want) {
		t.Fatalf("parseAddrs: %q, want %q", got, want)
	}
}

// TestCheckPlacements: every gateway leased, every disk exported by a
// live gateway.
func TestCheckPlacements(t *testing.T) {
	now := time.Unix(1000, 0)
	gws := []Gateway{{ID: "g1"}, {ID: "g2"}}
	live, dead := now.Add(time.Second).UnixNano(), now.Add(-time.Second).UnixNano()
	ok := placement{iqn: "iqn.a", gateway: "g1", want: "export", exportedAt: 1}
	tests := []struct {
		name   string
		leases map[string]int64
		ps     []placement
		err    string
	}{
		{"settled", map[string]int64{"g1": live, "g2": live}, []placement{ok, {iqn: "iqn.b", gateway: "g2", want: "export", exportedAt: 5}}, ""},
		{"no lease", map[string]int64{"g1": live}, []placement{ok}, "gateway g2 has no live lease"},
		{"lease expired", map[string]int64{"g1": live, "g2": dead}, nil, "gateway g2 has no live lease"},
		{"on a gateway not in the lab", map[string]int64{"g1": live, "g2": live, "g3": dead}, []placement{{iqn: "iqn.c", gateway: "g3", want: "export", exportedAt: 1}}, "whose lease is not live"},
		{"unexporting", map[string]int64{"g1": live, "g2": live}, []placement{{iqn: "iqn.c", gateway: "g1", want: "unexport", exportedAt: 1}}, "asked to unexport"},
		{"moving", map[string]int64{"g1": live, "g2": live}, []placement{{iqn: "iqn.c", gateway: "g1", want: "export", moveTo: "g2", exportedAt: 1}}, "being moved"},
		{"not exported", map[string]int64{"g1": live, "g2": live}, []placement{{iqn: "iqn.c", gateway: "g2", want: "export"}}, "has not exported it yet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPlacements(gws, tc.leases, tc.ps, now)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("checkPlacements: %v, want %q", err, tc.err)
			}
		})
	}
}

// TestGatewayServicesRoundTrip: services.json keeps each gateway's binary
// and the boot faults; one written before binaries were recorded reads
// with none (the lab's binary is used).
func TestGatewayServicesRoundTrip(t *testing.T) {
	l := twoGatewayLab(t)
	in := services{BmidBinary: "/old/bmid", BootFaults: true, Gateways: []Gateway{
		{ID: "g1", Bmid: proc.ID{Pid: 11, Start: 1}, Keepalived: proc.ID{Pid: 12, Start: 2}, Binary: "/new/bmid"},
		{ID: "g2", Bmid: proc.ID{Pid: 21, Start: 3}, Keepalived: proc.ID{Pid: 22, Start: 4}, Binary: "/old/bmid"}}}
	if err := l.saveServices(in); err != nil {
		t.Fatal(err)
	}
	if out := l.loadServices(); fmt.Sprintf("%+v", out) != fmt.Sprintf("%+v", in) {
		t.Fatalf("round trip: %+v, want %+v", out, in)
	}
	old := `{"bmid_binary":"/old/bmid","gateways":[{"id":"g1","bmid":{"pid":11,"start":1},"keepalived":{"pid":12,"start":2}}]}`
	if err := os.WriteFile(l.servicesPath(), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := l.loadServices(); len(out.Gateways) != 1 || out.Gateways[0].Binary != "" || out.BmidBinary != "/old/bmid" || out.BootFaults {
		t.Fatalf("old services.json: %+v", out)
	}
}

// TestRestartGatewaysRefuses: with a gateway down, a bad mode or a missing
// binary, a several-gateway lab's restart and boot-faults switch refuse
// with a clear error and change nothing.
func TestRestartGatewaysRefuses(t *testing.T) {
	l := twoGatewayLab(t)
	self, err := proc.Self(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// g1 "runs" (this test's process), g2's bmid is gone.
	in := services{BmidBinary: "/old/bmid", Gateways: []Gateway{
		{ID: "g1", Bmid: self, Keepalived: self},
		{ID: "g2", Bmid: proc.ID{Pid: 1 << 22, Start: 1}, Keepalived: self}}}
	if err := l.saveServices(in); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(l.servicesPath())
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		do   func() error
		kind error
		msg  string
	}{
		{"graceful, g2 down", func() error { _, err := l.RestartBmid(ctx, RestartGraceful, ""); return err }, fault.ErrConflict, "gateway g2's bmid is not running"},
		{"kill, g2 down", func() error { _, err := l.RestartBmid(ctx, RestartKill, ""); return err }, fault.ErrConflict, "bmi-lab gateway start g2"},
		{"faults on, g2 down", func() error { _, err := l.SetBootFaults(ctx, true); return err }, fault.ErrConflict, "gateway g2's bmid is not running"},
		{"upgrade without a binary", func() error { _, err := l.RestartBmid(ctx, RestartUpgrade, ""); return err }, fault.ErrInvalid, "needs the new bmid binary"},
		{"upgrade to a missing binary", func() error { _, err := l.RestartBmid(ctx, RestartUpgrade, "/nonexistent/bmid"); return err }, fault.ErrNotFound, "/nonexistent/bmid"},
		{"bad mode", func() error { _, err := l.RestartBmid(ctx, "reboot", ""); return err }, fault.ErrInvalid, "want graceful, kill or upgrade"},
	} {
		err := tc.do()
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v with %q", tc.name, err, tc.kind, tc.msg)
		}
		if after, _ := os.ReadFile(l.servicesPath()); string(after) != string(before) {
			t.Errorf("%s changed services.json:\n%s\nwas:\n%s", tc.name, after, before)
		}
	}
	// The keepalived of a gateway whose bmid runs is down: refused too.
	in.Gateways[1] = Gateway{ID: "g2", Bmid: self, Keepalived: proc.ID{Pid: 1 << 22, Start: 1}}
	if err := gatewaysRunning(in.Gateways); !errors.Is(err, fault.ErrConflict) || !strings.Contains(err.Error(), "g2's keepalived") {
		t.Fatalf("keepalived down: %v", err)
	}
}

// TestGatewayBmidArgv: a gateway's bmid runs its binary in its namespace
// on its own configuration, with the boot faults when the lab has them on.
func TestGatewayBmidArgv(t *testing.T) {
	l := twoGatewayLab(t)
	base := []string{"ip", "netns", "exec", "bmilab-gwt-g2", "/new/bmid", "serve", "--config", l.Dir + "/bmid-g2.yaml"}
	if got := l.gatewayBmidArgv(2, "/new/bmid", false); !slices.Equal(got, base) {
		t.Fatalf("without faults: %q, want %q", got, base)
	}
	want := slices.Clone(base)
	for _, kv := range BootFaults {
		want = append(want, "--set", kv)
	}
	if got := l.gatewayBmidArgv(2, "/new/bmid", true); !slices.Equal(got, want) {
		t.Fatalf("with faults: %q, want %q", got, want)
	}
}
