package steps

import (
	"context"
	"fmt"
	"strings"

	"github.com/cucumber/godog"
)

// BootFaultSwitch turns faults on a site's boot path on and off: bmid's
// boot.faults with 20 % of DHCP, TFTP and HTTP requests dropped and every
// answer 200 ms late (the lab restarts its bmid with them). Each returns
// once bmid serves again. Sites that cannot leave Site.BootFaults nil and
// lack the capability boot-faults.
type BootFaultSwitch interface {
	BootFaultsOn(ctx context.Context) error
	BootFaultsOff(ctx context.Context) error
}

func registerBootFaults(sc *godog.ScenarioContext) {
	sc.Step(`^the boot network loses 20 % of DHCP, TFTP and HTTP requests and answers each 200 ms late$`, bootFaultsOn)
	sc.Step(`^the boot network is healthy again$`, bootFaultsOff)
	sc.Step(`^(node [AB]) and (node [AB]) boot to their markers$`, bootBoth)
}

func bootFaultsOn(ctx context.Context) error {
	w := From(ctx)
	if w.site.BootFaults == nil {
		return fmt.Errorf("%w: site %s cannot turn boot faults on (@boot-faults needs capability boot-faults)", godog.ErrSkip, w.site.Name)
	}
	w.faultsOn = true // After turns them off even if this half failed
	return w.site.BootFaults.BootFaultsOn(ctx)
}

func bootFaultsOff(ctx context.Context) error {
	w := From(ctx)
	if !w.faultsOn {
		return fmt.Errorf("the boot faults were not turned on")
	}
	if err := w.site.BootFaults.BootFaultsOff(ctx); err != nil {
		return err
	}
	w.faultsOn = false
	return nil
}

// faultRetries is how often a node whose network boot gave up under the
// faults is power-cycled again (bootNode): with a fifth of the script
// fetches lost, iPXE's first fetch fails on one boot in five, and the
// lab's firmware then stops as much real firmware does.
const faultRetries = 5

// bootBoth boots two nodes at once (as bootToMarker does each, power
// cycling a node whose network boot gave up: bootNode) and logs how long
// each took from the first power on until BMI's timeline (and the console,
// where the site has consoles) proved its boot, and how many power-ons it
// took; both boots' timelines and consoles are attached.
func bootBoth(ctx context.Context, a, b string) (context.Context, error) {
	w := From(ctx)
	ctx, boots, err := bootTwo(ctx, a, b, func(ctx context.Context, alias string) (labBoot, error) {
		return bootNode(ctx, alias, faultRetries)
	})
	var times []string
	for i, alias := range []string{a, b} {
		if i < len(boots) && boots[i].Attempts > 0 {
			times = append(times, fmt.Sprintf("%s %.1f s (%d power-on(s))", alias, boots[i].Took.Seconds(), boots[i].Attempts))
		}
	}
	if w.cfg.Log != nil && len(times) > 0 {
		fmt.Fprintf(w.cfg.Log, "boot times (power on to proven boot): %s\n", strings.Join(times, ", "))
	}
	return ctx, err
}
