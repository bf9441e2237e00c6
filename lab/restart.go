package lab

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/service/fault"
)

// RestartMode is how RestartBmid takes bmid down before starting it again.
type RestartMode string

// The ways an operator's bmid goes down and comes back.
const (
	// RestartGraceful is a service manager's restart: SIGTERM, then start.
	RestartGraceful RestartMode = "graceful"
	// RestartKill is a crash: SIGKILL, then start.
	RestartKill RestartMode = "kill"
	// RestartUpgrade is a package upgrade: SIGTERM, then a new binary starts.
	RestartUpgrade RestartMode = "upgrade"
)

// RestartReport says what a restart took.
type RestartReport struct {
	Mode           RestartMode
	OldPid, NewPid int
	// Stopped is how long the old process took to exit.
	Stopped time.Duration
	// Ready is from the new process's start to its API answering /readyz
	// (bmid re-exports every target before it serves).
	Ready time.Duration
	// Binary is the bmid binary now running.
	Binary string
	// Gateways are a several-gateway lab's steps of its rolling restart,
	// in order (OldPid, NewPid, Stopped and Ready are then unused).
	Gateways []GatewayRestart
}

// BmidBinary is the bmid binary the lab runs (empty when it is not up).
func (l *Lab) BmidBinary() string { return l.loadServices().BmidBinary }

func (l *Lab) bmidConfPath() string { return filepath.Join(l.Dir, "bmid.yaml") }

// startBmid starts binary as the lab's bmid in the lab namespace.
func (l *Lab) startBmid(binary string, faults bool) (proc.ID, error) {
	argv := []string{"ip", "netns", "exec", l.Namespace, binary, "serve", "--config", l.bmidConfPath()}
	if faults {
		for _, kv := range BootFaults {
			argv = append(argv, "--set", kv)
		}
	}
	return proc.StartDaemon(argv, nil, filepath.Join(l.Dir, "bmid.log"))
}

// BootFaults are the faults `bmi-lab bmid faults on` runs bmid with (its
// boot.faults, as --set flags over bmid.yaml): a fifth of DHCP, TFTP and
// boot HTTP requests dropped and every answer 200 ms late. The acceptance
// suite's boot-faults capability: every node must still boot.
var BootFaults = []string{
	"boot.faults.dhcp.drop_percent=20", "boot.faults.dhcp.delay=200ms",
	"boot.faults.tftp.drop_percent=20", "boot.faults.tftp.delay=200ms",
	"boot.faults.http.drop_percent=20", "boot.faults.http.delay=200ms",
}

// SetBootFaults restarts the lab's bmid gracefully with BootFaults on or
// off (a several-gateway lab's: every gateway, rolling, as RestartBmid);
// later restarts keep the choice (services.json), `bmi-lab gateway start`
// too. It returns once the new bmid answers /readyz (every gateway: once
// the site has settled).
func (l *Lab) SetBootFaults(ctx context.Context, on bool) (RestartReport, error) {
	svc := l.loadServices()
	if len(svc.Gateways) > 0 {
		if err := gatewaysRunning(svc.Gateways); err != nil {
			return RestartReport{}, fmt.Errorf("lab %q: %w", l.Name, err)
		}
	} else if !svc.Bmid.Alive() {
		return RestartReport{}, fmt.Errorf("lab %q: bmid is not running (bmi-lab up): %w", l.Name, fault.ErrConflict)
	}
	was := svc.BootFaults
	svc.BootFaults = on
	if err := l.saveServices(svc); err != nil {
		return RestartReport{}, err
	}
	rep, err := l.RestartBmid(ctx, RestartGraceful, "")
	if err != nil && len(svc.Gateways) > 0 && !l.gatewayStarted(svc.Gateways) {
		// Refused before any gateway started again (the site did not
		// settle): nothing runs with the new choice, so it is not kept.
		now := l.loadServices()
		now.BootFaults = was
		if serr := l.saveServices(now); serr != nil {
			return rep, errors.Join(err, serr)
		}
	}
	return rep, err
}

// gatewayStarted reports whether a gateway's bmid was started since
// services.json recorded before.
func (l *Lab) gatewayStarted(before []Gateway) bool {
	now := l.loadServices().Gateways
	for k, g := range before {
		if k >= len(now) || now[k].Bmid != g.Bmid {
			return true
		}
	}
	return false
}

// RestartBmid takes the lab's running bmid down as mode says and starts it
// again (RestartUpgrade: starts binary instead), returning once the new
// one answers /readyz. Nodes booted from their disks are expected to ride
// through it; that is what the restart tests check on their consoles.
//
// A several-gateway lab's gateways restart rolling, one at a time, each
// once the site has settled after the one before (see rolling.go): every
// gateway running, ready and leased, every disk exported by a live
// gateway, keepalived's addresses back where they belong; it refuses
// (changing nothing) while a gateway is down. The report has a step per
// gateway.
func (l *Lab) RestartBmid(ctx context.Context, mode RestartMode, binary string) (RestartReport, error) {
	svc := l.loadServices()
	next := svc.BmidBinary
	switch mode {
	case RestartGraceful, RestartKill:
	case RestartUpgrade:
		if err := checkBinary(binary); err != nil {
			return RestartReport{}, err
		}
		next = binary
	default:
		return RestartReport{}, fmt.Errorf("restart mode %q: want graceful, kill or upgrade: %w", mode, fault.ErrInvalid)
	}
	if len(svc.Gateways) > 0 {
		return l.restartGateways(ctx, mode, binary)
	}
	if !svc.Bmid.Alive() {
		return RestartReport{}, fmt.Errorf("lab %q: bmid is not running (bmi-lab up): %w", l.Name, fault.ErrConflict)
	}
	rep := RestartReport{Mode: mode, OldPid: svc.Bmid.Pid, Binary: next}
	t0 := time.Now()
	var err error
	if mode == RestartKill {
		err = svc.Bmid.Kill(ctx)
	} else {
		err = svc.Bmid.Stop(ctx, 30*time.Second)
	}
	if err != nil {
		return rep, fmt.Errorf("lab %q: stop bmid: %w", l.Name, err)
	}
	rep.Stopped = time.Since(t0)
	t1 := time.Now()
	if svc.Bmid, err = l.startBmid(next, svc.BootFaults); err != nil {
		return rep, err
	}
	svc.BmidBinary = next
	if err := l.saveServices(svc); err != nil {
		return rep, err
	}
	rep.NewPid = svc.Bmid.Pid
	if err := waitHTTP(ctx, l.APIURL()+"/readyz", svc.Bmid, filepath.Join(l.Dir, "bmid.log")); err != nil {
		return rep, fmt.Errorf("lab %q: bmid after restart: %w", l.Name, err)
	}
	rep.Ready = time.Since(t1)
	return rep, nil
}

// SetNodeLink takes node's provisioning link (its tap on the lab bridge)
// down or up: the lab's fault for "the node's network is cut".
func (l *Lab) SetNodeLink(ctx context.Context, node string, up bool) error {
	n, err := l.Node(node)
	if err != nil {
		return err
	}
	state := "down"
	if up {
		state = "up"
	}
	if _, err := proc.Run(ctx, "ip", "-n", l.Namespace, "link", "set", n.Tap, state); err != nil {
		return fmt.Errorf("lab %q: link of %s %s: %w", l.Name, node, state, err)
	}
	return nil
}
