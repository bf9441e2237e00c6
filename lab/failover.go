package lab

import (
	"context"
	"fmt"
	"time"

	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/fault"
)

// FailoverResult is what one gateway's failure cost the stay-up nodes.
type FailoverResult struct {
	// Stalls is each node's largest I/O stall after the fault, as its
	// verifying workload (bmi-lab-io) measured it.
	Stalls map[string]time.Duration
	// Resumed is from the fault until every node had done its verified
	// writes after it.
	Resumed time.Duration
}

// Failover does a to gateway victim's bmid (GatewayKill or GatewayPause)
// and waits until every stay-up node of consoles (name → console) has
// done writes more verified writes, at most timeout: the failure's cost.
// Any I/O error or mismatch a node reports meanwhile is an error.
func (l *Lab) Failover(ctx context.Context, victim string, a GatewayAction, consoles map[string]vm.Console, writes int64,
	timeout time.Duration) (FailoverResult, error) {
	from := map[string]int64{}
	for n, c := range consoles {
		from[n] = c.Offset()
	}
	start := time.Now()
	if err := l.SignalGateway(ctx, victim, a); err != nil {
		return FailoverResult{}, err
	}
	res := FailoverResult{Stalls: map[string]time.Duration{}}
	for n, c := range consoles {
		p, err := c.WaitIO(ctx, from[n], writes, timeout)
		if err != nil {
			return res, fmt.Errorf("%s after gateway %s's %s: %w", n, victim, a, err)
		}
		if p.Errors != 0 || p.Mismatches != 0 {
			return res, fmt.Errorf("%s after gateway %s's %s: %d I/O errors, %d mismatches: %w", n, victim, a, p.Errors, p.Mismatches, fault.ErrConflict)
		}
		res.Stalls[n] = p.Stall
	}
	res.Resumed = time.Since(start)
	return res, nil
}
