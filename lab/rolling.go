package lab

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/service/fault"
)

// A several-gateway lab's bmid restarts as an operator restarts a
// multi-gateway site: rolling, one gateway at a time, and the next only
// once the site has settled, so that at every moment some gateway can
// serve every node. Settled means all of:
//
//   - every gateway's bmid and keepalived run, and its bmid answers
//     /healthz and /readyz;
//   - every gateway's lease is live in the state database, and every disk
//     is placed on a live gateway, to be exported (not being moved or
//     unexported) and exported by it;
//   - the floating addresses are where keepalived puts them when every
//     gateway is healthy (the group's on gateway 1, each gateway's own on
//     that gateway), each held by that one gateway only: the restarted
//     gateway's keepalived has left its fault state and took its
//     addresses back, so that the next gateway's keepalived has a backup
//     to hand its own to;
//
// and all that for settleLooks looks in a row, settlePoll apart (longer
// than keepalived's fall 2 at interval 1 plus its check's timeout): a
// keepalived that had counted the restarted bmid's silence as failures
// shows it within that window.
const (
	settlePoll    = 500 * time.Millisecond
	settleLooks   = 8
	settleTimeout = 3 * time.Minute
)

// SettleWindow is the least time a rolling restart waits, once a
// gateway's new bmid is ready, before the next gateway's goes down: how
// long the settled state must last.
const SettleWindow = (settleLooks - 1) * settlePoll

// GatewayRestart is what one gateway's step of a rolling restart took.
type GatewayRestart struct {
	// ID is the gateway (g1, g2, ...).
	ID             string
	OldPid, NewPid int
	// Stopped is how long the old bmid took to exit.
	Stopped time.Duration
	// Ready is from the new bmid's start to its /readyz answering.
	Ready time.Duration
	// Settled is from the new bmid's start until the site had settled
	// (see above): when the next gateway may go down.
	Settled time.Duration
	// Binary is the bmid binary it runs now.
	Binary string
}

// gatewayOps is what a rolling restart does to the lab's gateways
// (1-based indexes): labGateways on a lab, a recorder in the tests.
type gatewayOps interface {
	// settled looks once: nil if the site is settled, else why not.
	settled(ctx context.Context) error
	// down stops gateway i's bmid (SIGTERM, or SIGKILL for RestartKill)
	// and returns its pid.
	down(ctx context.Context, i int, mode RestartMode) (int, error)
	// up starts gateway i's bmid (binary; "": the one it ran) and
	// returns its pid and the binary.
	up(ctx context.Context, i int, binary string) (int, string, error)
	// ready waits until gateway i's bmid serves /healthz and /readyz.
	ready(ctx context.Context, i int) error
}

// roller runs a rolling restart over ops.
type roller struct {
	ops gatewayOps
	// n is the number of gateways.
	n int
	// poll, looks, timeout: see settlePoll, settleLooks, settleTimeout.
	poll    time.Duration
	looks   int
	timeout time.Duration
}

// waitSettled waits until r.ops has been settled for r.looks looks in a
// row, at most r.timeout; the error says what was last unsettled.
func (r roller) waitSettled(ctx context.Context) error {
	deadline := time.Now().Add(r.timeout)
	row := 0
	for {
		err := r.ops.settled(ctx)
		if err == nil {
			if row++; row >= r.looks {
				return nil
			}
		} else {
			row = 0
			if time.Now().After(deadline) {
				return fmt.Errorf("not settled within %s: %w", r.timeout, err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.poll):
		}
	}
}

// run restarts gateway 1, 2, ... n in turn as mode says (next: the binary
// each starts; "": the one it ran), each only once the site has settled
// since the last: a failure stops the restart there, with the steps done
// so far.
func (r roller) run(ctx context.Context, mode RestartMode, next string) ([]GatewayRestart, error) {
	if err := r.waitSettled(ctx); err != nil {
		return nil, fmt.Errorf("before the rolling restart: %w", err)
	}
	var steps []GatewayRestart
	for i := 1; i <= r.n; i++ {
		st := GatewayRestart{ID: GatewayID(i)}
		t0 := time.Now()
		var err error
		if st.OldPid, err = r.ops.down(ctx, i, mode); err != nil {
			return steps, fmt.Errorf("gateway %s: stop bmid: %w", st.ID, err)
		}
		st.Stopped = time.Since(t0)
		t1 := time.Now()
		if st.NewPid, st.Binary, err = r.ops.up(ctx, i, next); err != nil {
			return steps, fmt.Errorf("gateway %s: start bmid: %w", st.ID, err)
		}
		if err := r.ops.ready(ctx, i); err != nil {
			return steps, fmt.Errorf("gateway %s after its restart: %w", st.ID, err)
		}
		st.Ready = time.Since(t1)
		if err := r.waitSettled(ctx); err != nil {
			return steps, fmt.Errorf("gateway %s restarted (pid %d): %w", st.ID, st.NewPid, err)
		}
		st.Settled = time.Since(t1)
		steps = append(steps, st)
	}
	return steps, nil
}

// restartGateways is RestartBmid on a several-gateway lab: a rolling
// restart, each gateway's bmid taken down as mode says and started again
// (with upgrade, an upgrade's new binary; else with the binary it ran),
// with the lab's boot faults, once the one before has settled. Each
// gateway's new bmid and binary are recorded in services.json as it
// starts, and an upgrade's binary as the lab's once every gateway runs it.
func (l *Lab) restartGateways(ctx context.Context, mode RestartMode, upgrade string) (RestartReport, error) {
	svc := l.loadServices()
	if err := gatewaysRunning(svc.Gateways); err != nil {
		return RestartReport{}, fmt.Errorf("lab %q: %w", l.Name, err)
	}
	ops := &labGateways{l: l, svc: &svc}
	r := roller{ops: ops, n: len(svc.Gateways), poll: settlePoll, looks: settleLooks, timeout: settleTimeout}
	rep := RestartReport{Mode: mode, Binary: upgrade}
	var err error
	rep.Gateways, err = r.run(ctx, mode, upgrade)
	if err != nil {
		return rep, fmt.Errorf("lab %q: rolling restart: %w", l.Name, err)
	}
	if upgrade != "" {
		svc.BmidBinary = upgrade
	} else {
		rep.Binary = svc.BmidBinary
	}
	return rep, l.saveServices(svc)
}

// gatewaysRunning says why a rolling restart cannot start: a gateway
// whose bmid or keepalived does not run (restarting another would leave
// its nodes with no gateway).
func gatewaysRunning(gws []Gateway) error {
	for _, g := range gws {
		if !g.Bmid.Alive() {
			return fmt.Errorf("gateway %s's bmid is not running: start it first (bmi-lab gateway start %s): %w", g.ID, g.ID, fault.ErrConflict)
		}
		if !g.Keepalived.Alive() {
			return fmt.Errorf("gateway %s's keepalived is not running: its addresses cannot move: %w", g.ID, fault.ErrConflict)
		}
	}
	return nil
}

// labGateways is gatewayOps on the lab's processes.
type labGateways struct {
	l   *Lab
	svc *services
}

func (o *labGateways) down(ctx context.Context, i int, mode RestartMode) (int, error) {
	g := o.svc.Gateways[i-1]
	if mode == RestartKill {
		return g.Bmid.Pid, g.Bmid.Kill(ctx)
	}
	return g.Bmid.Pid, g.Bmid.Stop(ctx, 30*time.Second)
}

func (o *labGateways) up(_ context.Context, i int, binary string) (int, string, error) {
	g := &o.svc.Gateways[i-1]
	if binary == "" {
		binary = cmp.Or(g.Binary, o.svc.BmidBinary)
	}
	id, err := o.l.startGatewayBmid(i, binary, o.svc.BootFaults)
	if err != nil {
		return 0, binary, err
	}
	g.Bmid, g.Binary = id, binary
	return id.Pid, binary, o.l.saveServices(*o.svc)
}

func (o *labGateways) ready(ctx context.Context, i int) error {
	g := o.svc.Gateways[i-1]
	for _, p := range []string{"/readyz", "/healthz"} {
		if err := waitHTTP(ctx, o.l.GatewayAPIURL(i)+p, g.Bmid, o.l.gatewayLog(i)); err != nil {
			return err
		}
	}
	return nil
}

func (o *labGateways) settled(ctx context.Context) error {
	if err := gatewaysRunning(o.svc.Gateways); err != nil {
		return err
	}
	c := &http.Client{Timeout: 2 * time.Second}
	for i := range o.svc.Gateways {
		for _, p := range []string{"/healthz", "/readyz"} {
			url := o.l.GatewayAPIURL(i+1) + p
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := c.Do(req)
			if err != nil {
				return fmt.Errorf("gateway %s: %s: %w", GatewayID(i+1), p, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("gateway %s: %s answers %s", GatewayID(i+1), p, resp.Status)
			}
		}
	}
	leases, placements, err := o.l.gatewayState(ctx)
	if err != nil {
		return err
	}
	if err := checkPlacements(o.svc.Gateways, leases, placements, time.Now()); err != nil {
		return err
	}
	held := map[string][]string{}
	for i := range o.svc.Gateways {
		out, err := proc.Run(ctx, "ip", "-n", o.l.gatewayNS(i+1), "-o", "-4", "addr", "show")
		if err != nil {
			return fmt.Errorf("gateway %s's addresses: %w", GatewayID(i+1), err)
		}
		held[GatewayID(i+1)] = parseAddrs(out)
	}
	return checkLayout(o.l.floatingLayout(), held)
}

// placement is a disk's row in the state database's placements.
type placement struct {
	iqn, gateway, want, moveTo string
	exportedAt                 int64
}

// gatewayState reads the lab gateways' leases (gateway → expiry, Unix ns)
// and the disks' placements from the state database (psql on the lab's
// PostgreSQL; read only).
func (l *Lab) gatewayState(ctx context.Context) (map[string]int64, []placement, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, nil, err
	}
	query := func(q string) ([][]string, error) {
		out, err := proc.Run(ctx, filepath.Join(bin, "psql"), "-h", l.postgresDir(), "-U", "bmi", "-d", "bmi", "-tA", "-F", "|",
			"-v", "ON_ERROR_STOP=1", "-c", q)
		if err != nil {
			return nil, fmt.Errorf("lab %q: state database: %w", l.Name, err)
		}
		var rows [][]string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line != "" {
				rows = append(rows, strings.Split(line, "|"))
			}
		}
		return rows, nil
	}
	rows, err := query(`SELECT id, expires_at FROM gateways WHERE gateway_group = '` + GatewayGroup + `'`)
	if err != nil {
		return nil, nil, err
	}
	leases := map[string]int64{}
	for _, r := range rows {
		if len(r) != 2 {
			return nil, nil, fmt.Errorf("lab %q: gateways row %q", l.Name, r)
		}
		if leases[r[0]], err = strconv.ParseInt(r[1], 10, 64); err != nil {
			return nil, nil, fmt.Errorf("lab %q: gateway %s's lease %q: %w", l.Name, r[0], r[1], err)
		}
	}
	rows, err = query(`SELECT iqn, gateway, want, move_to, exported_at FROM placements WHERE gateway_group = '` + GatewayGroup + `' ORDER BY iqn`)
	if err != nil {
		return nil, nil, err
	}
	var ps []placement
	for _, r := range rows {
		if len(r) != 5 {
			return nil, nil, fmt.Errorf("lab %q: placements row %q", l.Name, r)
		}
		p := placement{iqn: r[0], gateway: r[1], want: r[2], moveTo: r[3]}
		if p.exportedAt, err = strconv.ParseInt(r[4], 10, 64); err != nil {
			return nil, nil, fmt.Errorf("lab %q: placement of %s: exported_at %q: %w", l.Name, r[0], r[4], err)
		}
		ps = append(ps, p)
	}
	return leases, ps, nil
}

// checkPlacements says why the database is not settled at now: a gateway
// whose lease is not live, or a disk not placed on a live gateway, or
// not exported there yet.
func checkPlacements(gws []Gateway, leases map[string]int64, ps []placement, now time.Time) error {
	live := func(id string) bool { e, ok := leases[id]; return ok && e >= now.UnixNano() }
	for _, g := range gws {
		if !live(g.ID) {
			return fmt.Errorf("gateway %s has no live lease in the state database", g.ID)
		}
	}
	for _, p := range ps {
		switch {
		case !live(p.gateway):
			return fmt.Errorf("disk %s is placed on gateway %s, whose lease is not live (a take-over is due)", p.iqn, p.gateway)
		case p.want != "export":
			return fmt.Errorf("disk %s: gateway %s is asked to %s it", p.iqn, p.gateway, p.want)
		case p.moveTo != "":
			return fmt.Errorf("disk %s is being moved from gateway %s to %s", p.iqn, p.gateway, p.moveTo)
		case p.exportedAt == 0:
			return fmt.Errorf("disk %s is placed on gateway %s, which has not exported it yet", p.iqn, p.gateway)
		}
	}
	return nil
}

// floatingLayout is where keepalived puts each floating address (as "ip
// addr" prints it, address/length) when every gateway is healthy: the
// group's (each network's own) on gateway 1, the first choice of the
// group's VRRP instance; each gateway's own portals on it.
func (l *Lab) floatingLayout() map[string]string {
	out := map[string]string{}
	for _, n := range l.gatewayNets() {
		out[n.Addr.String()] = GatewayID(1)
		for j := 1; j <= l.Gateways; j++ {
			out[fmt.Sprintf("%s/%d", at(n.Addr, byte(20+j)), n.Addr.Bits())] = GatewayID(j)
		}
	}
	return out
}

// parseAddrs returns the IPv4 addresses of "ip -o -4 addr show" (as
// address/length).
func parseAddrs(out string) []string {
	var as []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for k := 0; k+1 < len(f); k++ {
			if f[k] == "inet" {
				as = append(as, f[k+1])
				break
			}
		}
	}
	return as
}

// checkLayout says why the floating addresses held (gateway → its
// addresses) are not as want (address → gateway) has them: an address
// held by no gateway, by another, or by two.
func checkLayout(want map[string]string, held map[string][]string) error {
	holders := map[string][]string{}
	for gw, as := range held {
		for _, a := range as {
			if _, ok := want[a]; ok {
				holders[a] = append(holders[a], gw)
			}
		}
	}
	addrs := make([]string, 0, len(want))
	for a := range want {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		h := holders[a]
		slices.Sort(h)
		switch {
		case len(h) == 0:
			return fmt.Errorf("no gateway holds %s yet (keepalived: %s's)", a, want[a])
		case len(h) > 1:
			return fmt.Errorf("gateways %s all hold %s", strings.Join(h, ", "), a)
		case h[0] != want[a]:
			return fmt.Errorf("gateway %s holds %s, not yet gateway %s (keepalived)", h[0], a, want[a])
		}
	}
	return nil
}

// checkBinary says whether binary can be an upgrade's new bmid.
func checkBinary(binary string) error {
	if binary == "" {
		return fmt.Errorf("an upgrade needs the new bmid binary: %w", fault.ErrInvalid)
	}
	if _, err := os.Stat(binary); err != nil {
		return fmt.Errorf("new bmid binary %q: %w", binary, fault.ErrNotFound)
	}
	return nil
}
