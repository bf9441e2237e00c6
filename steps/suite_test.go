//go:build ceph_preview

package steps_test

import (
	"context"
	"flag"
	"testing"

	"github.com/bmi-go/bmi/uat"
)

var (
	tags     = flag.String("uat.tags", "", "godog tag expression, e.g. @images")
	seed     = flag.Uint64("uat.seed", 0, "random names with this seed (0: readable names)")
	features = flag.String("uat.feature", "", "run only this feature file (e.g. images.feature)")
)

// TestFeatures runs every feature (minus @boots: the local site has no
// machines) against the local site, writing its results to
// test-results/uat/<timestamp>-local-<PASS|FAIL>/.
func TestFeatures(t *testing.T) {
	if testing.Short() {
		t.Skip("the acceptance suite does not run under -short")
	}
	site := localSite(t)
	var fs []string
	if *features != "" {
		fs = []string{*features}
	}
	res, err := uat.Run(context.Background(), uat.RunOptions{
		Site: site, Tags: *tags, Features: fs, Seed: *seed, Results: "../test-results/uat", TestingT: t,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Skipped {
		t.Log(s)
	}
	t.Logf("results in %s", res.Dir)
	if !res.Passed {
		t.Fatalf("the acceptance suite failed on the local site (status %d): see %s", res.Status, res.Dir)
	}
}
