package steps

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/cucumber/godog"
)

// Register adds the suite's steps and hooks to a scenario context. The
// Before hook puts a fresh World in the scenario's context; the After hook
// rolls back whatever the scenario created (LIFO, negative checks),
// whether it passed or failed, and fails the scenario if that fails. n
// numbers the scenarios of a run (names and random seeds derive from it).
func Register(sc *godog.ScenarioContext, cfg Config, n *atomic.Uint64) {
	sc.Before(func(ctx context.Context, s *godog.Scenario) (context.Context, error) {
		if err := ctx.Err(); err != nil {
			return ctx, fmt.Errorf("the run was interrupted: %w", err)
		}
		w, err := newWorld(cfg, s.Name, n.Add(1))
		if err != nil {
			return ctx, err
		}
		return context.WithValue(ctx, worldKey{}, w), nil
	})
	sc.After(func(ctx context.Context, s *godog.Scenario, stepErr error) (context.Context, error) {
		w := From(ctx)
		if w == nil {
			return ctx, stepErr
		}
		// HIL must be up for the rollback
		if w.hilIsDown {
			if err := w.site.HILSwitch.StartHIL(context.WithoutCancel(ctx)); err != nil {
				return ctx, fmt.Errorf("scenario %q: bring HIL back: %w", s.Name, err)
			}
			w.hilIsDown = false
		}
		// and Ceph
		if w.cephIsDown {
			if err := w.site.CephSwitch.StartCeph(context.WithoutCancel(ctx)); err != nil {
				return ctx, fmt.Errorf("scenario %q: bring Ceph back: %w", s.Name, err)
			}
			w.cephIsDown = false
		}
		// and a healthy boot network
		if w.faultsOn {
			if err := w.site.BootFaults.BootFaultsOff(context.WithoutCancel(ctx)); err != nil {
				return ctx, fmt.Errorf("scenario %q: turn the boot faults off: %w", s.Name, err)
			}
			w.faultsOn = false
		}
		// a cancelled run (SIGINT) still rolls back
		if err := w.rollback(context.WithoutCancel(ctx)); err != nil {
			return ctx, fmt.Errorf("rollback of scenario %q: %w", s.Name, err)
		}
		return ctx, nil
	})
	registerImages(sc)
	registerNodes(sc)
	registerErrors(sc)
	registerChecks(sc)
	registerLab(sc)
	registerRestart(sc)
	registerSite(sc)
	registerHILDown(sc)
	registerCephDown(sc)
	registerBootFaults(sc)
	registerDiskSwitch(sc)
	registerAttacker(sc)
}
