package uat

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cucumber/godog"

	"github.com/bmi-go/bmi/steps"
)

var demoFeatures = fstest.MapFS{
	"demo.feature": {Data: []byte(`@demo
Feature: Demo

  Scenario: All pass
    Given a step that passes
    Then a step that passes

  Scenario: A check that cannot run here
    Given a step that passes
    Then a step that skips
    And a step that passes

  Scenario: Broken
    Given a step that fails

  @hil-stop
  Scenario: Needs a HIL it may stop
    Given a step that passes
    When a step that passes
`)},
	"tenants.feature": {Data: []byte(`@two-tenants
Feature: Tenants

  Background:
    Given a step that passes

  Scenario: Cross tenants
    Then a step that passes
`)},
}

// TestRunReportsSkipped runs real godog over scenarios that pass, fail,
// are skipped by a step, and need capabilities the site lacks: the last
// two are skipped in every output, never passed.
func TestRunReportsSkipped(t *testing.T) {
	results := t.TempDir()
	site := &steps.Site{Name: "demo", APIURL: "http://127.0.0.1:1", HILURL: "http://127.0.0.1:1", Project: "p"}
	res, err := Run(context.Background(), RunOptions{Site: site, Results: results, FS: demoFeatures,
		Now: func() time.Time { return time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC) },
		Steps: func(sc *godog.ScenarioContext) {
			sc.Step(`^a step that passes$`, func() error { return nil })
			sc.Step(`^a step that skips$`, func() error { return godog.ErrSkip })
			sc.Step(`^a step that fails$`, func() error { return errors.New("boom") })
		}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed || !strings.HasSuffix(res.Dir, "-FAIL") {
		t.Fatalf("run passed with a failing scenario: %+v", res)
	}
	if s := res.Summary; s.Passed != 1 || s.Failed != 1 || s.Skipped != 3 {
		t.Fatalf("summary %+v, want 1 passed, 1 failed, 3 skipped", s)
	}
	status := map[string]string{}
	for _, o := range res.Summary.Scenarios {
		status[o.Name] = o.Status + ": " + o.Reason
	}
	for name, want := range map[string]string{
		"All pass":                     "passed: ",
		"A check that cannot run here": "skipped: step skipped: Then a step that skips",
		"Broken":                       "failed: failed: Given a step that fails: boom",
		"Needs a HIL it may stop":      "skipped: not run: needs hil-stop",
		"Cross tenants":                "skipped: not run: needs two-tenants",
	} {
		if !strings.HasPrefix(status[name], want) {
			t.Errorf("scenario %q: %q, want %q...", name, status[name], want)
		}
	}

	pretty := readFile(t, res.Dir, "pretty.log")
	if !strings.Contains(pretty, "bmi-uat: 5 scenarios (1 passed, 1 failed, 3 skipped)") ||
		regexp.MustCompile(`(?m)^\d+ scenarios? \(`).MatchString(pretty) {
		t.Errorf("pretty.log has no right summary, or godog's (which counts skipped as passed):\n%s", pretty)
	}

	var ju junitSuites
	if err := xml.Unmarshal([]byte(readFile(t, res.Dir, "junit.xml")), &ju); err != nil {
		t.Fatal(err)
	}
	if ju.Tests != 5 || ju.Failures != 1 || ju.Skipped != 3 {
		t.Errorf("junit.xml: %d tests, %d failures, %d skipped; want 5, 1, 3", ju.Tests, ju.Failures, ju.Skipped)
	}
	for _, s := range ju.Suites {
		for _, c := range s.Cases {
			if (c.Status == statusPassed) != (c.Name == "All pass") || (c.Status == statusSkipped) != (c.Skipped != nil) {
				t.Errorf("junit.xml case %q: status %q, skipped %v", c.Name, c.Status, c.Skipped)
			}
		}
	}

	var cuke []cukeFeature
	if err := json.Unmarshal([]byte(readFile(t, res.Dir, "cucumber.json")), &cuke); err != nil {
		t.Fatal(err)
	}
	notRun := 0
	for _, f := range cuke {
		for _, e := range f.Elements {
			if st, _ := outcome(e); st == statusSkipped && (e.Name == "Needs a HIL it may stop" || e.Name == "Cross tenants") {
				notRun++
				if len(e.Steps) != 2 {
					t.Errorf("cucumber.json: %q has %d steps, want 2 (with the Background's)", e.Name, len(e.Steps))
				}
			}
		}
	}
	if notRun != 2 {
		t.Errorf("cucumber.json lists %d of the 2 scenarios the site cannot run", notRun)
	}

	if page := readFile(t, res.Dir, "report.html"); !strings.Contains(page, "<td>5 (1 failed, 3 skipped)</td>") {
		t.Errorf("report.html does not count the skipped scenarios")
	}
	line, ok, err := CheckLatest(results)
	if err != nil || ok || !strings.Contains(line, "scenarios: 1 passed, 1 failed, 3 skipped (skipped: ") {
		t.Errorf("CheckLatest = %q, %v, %v", line, ok, err)
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
