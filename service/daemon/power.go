package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hil"
)

// powerStatus asks HIL whether a node is powered on (*hil.Client).
type powerStatus interface {
	PowerStatus(ctx context.Context, cred hil.Credentials, node string) (string, error)
}

// powerGate withholds a node's boot config (DHCP answer and iPXE script)
// while HIL reports the node powered off (boot.require_power_on): a host
// that takes a powered-off node's MAC gets neither its lease nor its
// script. HIL is asked with BMI's own account; an "on" is trusted for
// onTTL, an "off" or an error never.
type powerGate struct {
	hil   powerStatus
	cred  hil.Credentials
	onTTL time.Duration
	now   func() time.Time
	limit boot.LogLimiter
	log   func(msg string, args ...any)

	mu sync.Mutex
	on map[string]time.Time // node → until when "on" is trusted
}

// allow returns nil when node may get its boot config now.
func (g *powerGate) allow(ctx context.Context, node string) error {
	if g == nil {
		return nil
	}
	now := g.now()
	g.mu.Lock()
	until, ok := g.on[node]
	g.mu.Unlock()
	if ok && now.Before(until) {
		return nil
	}
	st, err := g.hil.PowerStatus(ctx, g.cred, node)
	if err != nil {
		g.warn("boot config withheld: HIL does not say whether the node is powered on", "node", node, "err", err)
		return fault.Errorf(fault.Unavailable, "power status of node %q: %v", node, err)
	}
	if st != "on" {
		g.warn("boot config withheld: HIL reports the node powered off, so this request is not from it", "node", node)
		return fault.Errorf(fault.NotFound, "node %q is powered off: its boot config is withheld", node)
	}
	g.mu.Lock()
	if len(g.on) > 10000 {
		g.on = map[string]time.Time{}
	}
	g.on[node] = now.Add(g.onTTL)
	g.mu.Unlock()
	return nil
}

func (g *powerGate) warn(msg string, args ...any) {
	if ok, suppressed := g.limit.Allow(); ok {
		g.log(msg, append(args, "suppressed_before", suppressed)...)
	}
}
