package steps

import (
	"context"
	"fmt"

	"github.com/cucumber/godog"
)

// HILSwitch takes a site's HIL down and brings it back (same URL, same
// state). Sites that cannot leave Site.HILSwitch nil and lack the
// capability hil-stop: the @hil-stop scenarios are skipped there.
type HILSwitch interface {
	StopHIL(ctx context.Context) error
	StartHIL(ctx context.Context) error
}

// CephSwitch takes a site's Ceph down and brings it back (same monitors,
// same data). Sites that cannot leave Site.CephSwitch nil and lack the
// capability ceph-stop.
type CephSwitch interface {
	StopCeph(ctx context.Context) error
	StartCeph(ctx context.Context) error
}

func registerHILDown(sc *godog.ScenarioContext) {
	sc.Step(`^HIL becomes unreachable$`, hilDown)
	sc.Step(`^HIL is back$`, hilBack)
}

// hilDown records the project's images (the "unchanged" baseline, taken
// while BMI can still authenticate) and stops HIL.
func hilDown(ctx context.Context) error {
	w := From(ctx)
	if w.site.HILSwitch == nil {
		return fmt.Errorf("%w: site %s cannot take HIL down (@hil-stop needs capability hil-stop)", godog.ErrSkip, w.site.Name)
	}
	names, err := w.imageNames(ctx)
	if err != nil {
		return err
	}
	w.before = names
	w.hilIsDown = true
	return w.site.HILSwitch.StopHIL(ctx)
}

func hilBack(ctx context.Context) error {
	w := From(ctx)
	if !w.hilIsDown {
		return fmt.Errorf("hil was not taken down")
	}
	if err := w.site.HILSwitch.StartHIL(ctx); err != nil {
		return err
	}
	w.hilIsDown = false
	return w.hil.Authenticate(ctx, hilCred(w.site.Operator))
}
