package boot

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/bmi-go/bmi/service/config"
)

// Faults makes one service lossy or slow, for tests and the lab. The zero
// value injects nothing.
type Faults struct {
	// DropRate is the probability (0 to 1) that a packet or request is
	// dropped without an answer.
	DropRate float64
	// Delay is added before every answer that is not dropped.
	Delay time.Duration
}

// Enabled reports whether f injects anything.
func (f Faults) Enabled() bool { return f.DropRate > 0 || f.Delay > 0 }

// Validate checks the ranges.
func (f Faults) Validate() error {
	if f.DropRate < 0 || f.DropRate > 1 || f.DropRate != f.DropRate {
		return fmt.Errorf("fault drop rate %v is not between 0 and 1", f.DropRate)
	}
	if f.Delay < 0 {
		return fmt.Errorf("fault delay %v is negative", f.Delay)
	}
	return nil
}

// Announce logs, loudly, that fault injection is on for service; it logs
// nothing when f is off.
func (f Faults) Announce(log *slog.Logger, service string) {
	if !f.Enabled() {
		return
	}
	log.Warn("FAULT INJECTION IS ON: answers are dropped or delayed on purpose; never use this in production",
		"service", service, "drop_rate", f.DropRate, "delay", f.Delay)
}

// Drop decides whether to drop the current packet or request.
func (f Faults) Drop() bool {
	return f.DropRate > 0 && rand.Float64() < f.DropRate
}

// Wait sleeps for Delay, or until ctx is done; it reports whether ctx
// ended the wait.
func (f Faults) Wait(ctx context.Context) bool {
	if f.Delay <= 0 {
		return false
	}
	t := time.NewTimer(f.Delay)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case <-ctx.Done():
		return true
	}
}

// FaultsFromConfig turns one service's entry of boot.faults in bmid's
// configuration into Faults.
func FaultsFromConfig(c config.Fault) Faults {
	return Faults{DropRate: float64(c.DropPercent) / 100, Delay: c.Delay}
}
