package uat

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cucumber/godog"

	"github.com/bmi-go/bmi/features"
	"github.com/bmi-go/bmi/steps"
)

// RunOptions says what to run where.
type RunOptions struct {
	Site *steps.Site
	// Tags is a godog tag expression ("@images && ~@slow") ANDed with the
	// site's own exclusions (@lab without machines, @two-tenants without a
	// second tenant).
	Tags string
	// Features limits the run to these feature files (names in
	// features.FS, e.g. "images.feature"); empty means all.
	Features []string
	// Seed, when not zero, gives every scenario random names (a round of
	// --randomize); the same seed replays the same names.
	Seed uint64
	// Round numbers a --randomize round (0: not a round).
	Round int
	// Results is the root of the result directories (test-results/uat).
	Results string
	// Output receives the pretty log as it runs (nil: only the file).
	Output io.Writer
	// TestingT runs the scenarios as subtests of a Go test.
	TestingT *testing.T
	// Now is the run's clock (nil: time.Now).
	Now func() time.Time
	// FS replaces the embedded features (tests); Steps adds step
	// definitions to every scenario (tests).
	FS    fs.FS
	Steps func(*godog.ScenarioContext)
}

// Result is the outcome of one run.
type Result struct {
	Dir     string // the result directory
	Passed  bool
	Skipped []string // what the site cannot run, one line each
	Status  int      // godog's: 0 passed, 1 failed, 2 no scenarios
}

// Exclusions returns the tag filter parts the site imposes and the
// reasons, one line each.
func Exclusions(site *steps.Site) (tags, why []string) {
	if !site.Machines {
		tags = append(tags, "~@lab")
		why = append(why, fmt.Sprintf("@lab scenarios skipped: site %s has no machines that boot (no consoles)", site.Name))
	}
	if !site.CanRestart() {
		tags = append(tags, "~@restart")
		why = append(why, fmt.Sprintf("@restart scenarios skipped: site %s needs machines that boot, stayup_image and the three bmid_restart commands", site.Name))
	}
	if !site.TwoTenants() {
		tags = append(tags, "~@two-tenants")
		why = append(why, fmt.Sprintf("@two-tenants scenarios skipped: site %s names no other tenant (other_project)", site.Name))
	}
	if !site.CanAttack() {
		tags = append(tags, "~@attacker")
		why = append(why, fmt.Sprintf("@attacker scenarios skipped: site %s has no foothold on the provisioning network (foothold)", site.Name))
	}
	return tags, why
}

// Run runs the suite once and writes its result directory.
func Run(ctx context.Context, o RunOptions) (Result, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	fsys := fs.FS(features.FS)
	if o.FS != nil {
		fsys = o.FS
	}
	paths, err := featurePaths(fsys, o.Features)
	if err != nil {
		return Result{}, err
	}
	excl, why := Exclusions(o.Site)
	tags := excl
	if o.Tags != "" {
		tags = append([]string{o.Tags}, excl...)
	}
	stamp := now().UTC().Format("20060102T150405Z")
	base := stamp + "-" + o.Site.Name
	if o.Round > 0 {
		base += fmt.Sprintf("-round%d", o.Round)
	}
	dir := filepath.Join(o.Results, base+"-RUNNING")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	j, err := steps.OpenJournal(filepath.Join(dir, "journal.jsonl"), stamp[9:15])
	if err != nil {
		return Result{}, err
	}
	pretty, err := os.Create(filepath.Join(dir, "pretty.log"))
	if err != nil {
		j.Close()
		return Result{}, err
	}
	out := io.Writer(pretty)
	if o.Output != nil {
		out = io.MultiWriter(pretty, o.Output)
	}
	fmt.Fprintf(out, "bmi-uat: site %s, results in %s\n", o.Site.Name, dir)
	if o.Seed != 0 {
		fmt.Fprintf(out, "bmi-uat: random names, seed %d (replay with --seed %d)\n", o.Seed, o.Seed)
	}
	for _, w := range why {
		fmt.Fprintln(out, "bmi-uat: "+w)
	}
	var n atomic.Uint64
	cfg := steps.Config{Site: o.Site, Journal: j, Seed: o.Seed, Log: out}
	suite := godog.TestSuite{
		Name: "bmi-uat",
		ScenarioInitializer: func(sc *godog.ScenarioContext) {
			steps.Register(sc, cfg, &n)
			if o.Steps != nil {
				o.Steps(sc)
			}
		},
		Options: &godog.Options{
			Format:         fmt.Sprintf("pretty,junit:%s,cucumber:%s", filepath.Join(dir, "junit.xml"), filepath.Join(dir, "cucumber.json")),
			Output:         out,
			FS:             fsys,
			Paths:          paths,
			Tags:           strings.Join(tags, " && "),
			Strict:         true,
			NoColors:       true,
			Concurrency:    1,
			TestingT:       o.TestingT,
			DefaultContext: ctx,
		},
	}
	status := suite.Run()
	// anything a scenario could not roll back (an interrupted run) is
	// undone now, while the journal is open
	left, rerr := steps.ReadJournal(filepath.Join(dir, "journal.jsonl"))
	if rerr == nil && len(left) > 0 {
		fmt.Fprintf(out, "bmi-uat: %d journal entries left; rolling them back\n", len(left))
		rerr = steps.Replay(context.WithoutCancel(ctx), o.Site, left, j)
	}
	if rerr != nil {
		fmt.Fprintf(out, "bmi-uat: rollback: %v (run `bmi-uat clean %s`)\n", rerr, o.Site.Name)
	}
	passed := status == 0 && rerr == nil && ctx.Err() == nil
	verdict := "FAIL"
	if passed {
		verdict = "PASS"
	}
	if status == 2 {
		fmt.Fprintln(out, "bmi-uat: no scenario matched: FAIL")
	}
	fmt.Fprintf(out, "bmi-uat: %s\n", verdict)
	pretty.Close()
	j.Close()
	copyConsoles(o.Site, dir)
	if err := WriteReport(dir, ReportInfo{Site: o.Site.Name, Seed: o.Seed, Round: o.Round, Verdict: verdict}); err != nil && o.Output != nil {
		fmt.Fprintf(o.Output, "bmi-uat: %v\n", err)
	}
	final := filepath.Join(o.Results, base+"-"+verdict)
	if err := os.Rename(dir, final); err != nil {
		return Result{Dir: dir, Status: status, Skipped: why}, err
	}
	return Result{Dir: final, Passed: passed, Status: status, Skipped: why}, nil
}

// featurePaths checks the requested features exist in the embedded set.
func featurePaths(fsys fs.FS, want []string) ([]string, error) {
	all, err := fs.Glob(fsys, "*.feature")
	if err != nil {
		return nil, err
	}
	if len(want) == 0 {
		return all, nil
	}
	var out []string
	for _, w := range want {
		f := strings.TrimSuffix(filepath.Base(w), ".feature") + ".feature"
		if !slices.Contains(all, f) {
			return nil, fmt.Errorf("unknown feature %q (have %s)", w, strings.Join(all, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// copyConsoles copies the site's console logs into the result directory.
func copyConsoles(site *steps.Site, dir string) {
	if site.Consoles == "" {
		return
	}
	ms, _ := filepath.Glob(filepath.Join(site.Consoles, "*.log"))
	if len(ms) == 0 {
		return
	}
	dst := filepath.Join(dir, "consoles")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return
	}
	for _, m := range ms {
		if b, err := os.ReadFile(m); err == nil {
			_ = os.WriteFile(filepath.Join(dst, filepath.Base(m)), b, 0o644)
		}
	}
}
