package steps

import (
	"context"
	"fmt"

	"github.com/cucumber/godog"
)

func registerCephDown(sc *godog.ScenarioContext) {
	sc.Step(`^Ceph becomes unreachable$`, cephDown)
	sc.Step(`^Ceph is back$`, cephBack)
}

// cephDown records the project's images (the "unchanged" baseline; BMI
// lists them from its database) and stops the site's Ceph.
func cephDown(ctx context.Context) error {
	w := From(ctx)
	if w.site.CephSwitch == nil {
		return fmt.Errorf("%w: site %s cannot take Ceph down (@ceph-stop needs capability ceph-stop)", godog.ErrSkip, w.site.Name)
	}
	names, err := w.imageNames(ctx)
	if err != nil {
		return err
	}
	w.before = names
	w.cephIsDown = true
	return w.site.CephSwitch.StopCeph(ctx)
}

func cephBack(ctx context.Context) error {
	w := From(ctx)
	if !w.cephIsDown {
		return fmt.Errorf("ceph was not taken down")
	}
	if err := w.site.CephSwitch.StartCeph(ctx); err != nil {
		return err
	}
	w.cephIsDown = false
	_, err := rbdList(ctx, w.site)
	return err
}
