package guard

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hil"
)

// PowerStatus asks HIL whether a node is powered on (*hil.Client).
type PowerStatus interface {
	PowerStatus(ctx context.Context, cred hil.Credentials, node string) (string, error)
}

// PowerGate withholds a node's boot config (DHCP answer and iPXE script)
// while HIL reports the node powered off (boot.require_power_on): a host
// that takes a powered-off node's MAC gets neither its lease nor its
// script. HIL is asked with BMI's own account; an "on" is trusted for
// OnTTL, an "off" never. When HIL cannot be reached the config is served
// (with a warning): a node that reboots during a HIL outage must still
// boot. Any other HIL error (a refusal of BMI's account) withholds it.
type PowerGate struct {
	hil   PowerStatus
	cred  hil.Credentials
	onTTL time.Duration
	now   func() time.Time
	limit boot.LogLimiter
	log   *slog.Logger

	mu sync.Mutex
	on map[string]time.Time // node → until when "on" is trusted
}

// NewPowerGate returns a gate asking h with cred; an "on" is trusted for
// onTTL.
func NewPowerGate(h PowerStatus, cred hil.Credentials, onTTL time.Duration, log *slog.Logger) *PowerGate {
	return &PowerGate{hil: h, cred: cred, onTTL: onTTL, now: time.Now, log: log, on: map[string]time.Time{}}
}

// Allow returns nil when node may get its boot config now (HIL says it is
// on, or HIL cannot be reached): an error of kind fault.NotFound when HIL
// says it is off, fault.Unavailable when HIL refuses to say. A nil gate
// allows everything.
func (g *PowerGate) Allow(ctx context.Context, node string) error {
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
	switch {
	case fault.Of(err) == fault.Unavailable:
		// HIL is down: running nodes come first, and one that reboots
		// must still find its disk. Served without the check, loudly.
		g.warn("HIL unreachable: boot config served without the power check", "node", node, "err", err)
		return nil
	case err != nil:
		g.warn("boot config withheld: HIL does not say whether the node is powered on", "node", node, "err", err)
		return fault.Errorf(fault.Unavailable, "power status of node %q: %s", node, err.Error())
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

func (g *PowerGate) warn(msg string, args ...any) {
	if ok, suppressed := g.limit.Allow(); ok {
		g.log.Warn(msg, append(args, "suppressed_before", suppressed)...)
	}
}
