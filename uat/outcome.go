package uat

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/bmi-go/bmi/steps"
)

// The outcomes of a scenario.
const (
	statusPassed  = "passed"
	statusFailed  = "failed"
	statusSkipped = "skipped"
)

// ScenarioOutcome is how one scenario of a run ended.
type ScenarioOutcome struct {
	Feature string `json:"feature"`
	URI     string `json:"uri"`
	Name    string `json:"name"`
	// Status is passed, failed or skipped: skipped when the site lacks a
	// capability it needs (it did not run) or a step skipped it (its
	// checks did not all run), even if its other steps passed.
	Status   string        `json:"status"`
	Reason   string        `json:"reason,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Summary is the outcome of a run's scenarios (summary.json in its
// result directory).
type Summary struct {
	Passed    int               `json:"passed"`
	Failed    int               `json:"failed"`
	Skipped   int               `json:"skipped"`
	Scenarios []ScenarioOutcome `json:"scenarios"`
}

// Line is the run's one-line summary.
func (s Summary) Line() string {
	return fmt.Sprintf("bmi-uat: %d scenarios (%d passed, %d failed, %d skipped)", s.Passed+s.Failed+s.Skipped, s.Passed, s.Failed, s.Skipped)
}

// ReadSummary reads a result directory's summary.json.
func ReadSummary(dir string) (Summary, error) {
	var s Summary
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

// finish completes a run's results once godog is done: the scenarios the
// site could not run (and the tag filter selected) join cucumber.json
// with every step skipped; then every scenario gets its outcome, written
// to summary.json and junit.xml.
func finish(dir string, site *steps.Site, feats []Feature, filter string) (Summary, error) {
	path := filepath.Join(dir, "cucumber.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return Summary{}, fmt.Errorf("results: %w", err)
	}
	var raw []map[string]any
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &raw); err != nil {
			return Summary{}, fmt.Errorf("results: cucumber.json: %w", err)
		}
	}
	reasons := map[string]string{} // uri + "\x00" + scenario name → why it did not run
	for _, p := range Plan(site, feats) {
		if p.Runs() || !matchTags(filter, p.Scenario.Tags) {
			continue
		}
		reasons[p.Feature.File+"\x00"+p.Scenario.Name] = p.Why(site.Name)
		raw = addNotRun(raw, p)
	}
	if b, err = json.MarshalIndent(raw, "", "    "); err != nil {
		return Summary{}, err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return Summary{}, fmt.Errorf("results: %w", err)
	}
	var fs []cukeFeature
	if err := json.Unmarshal(b, &fs); err != nil {
		return Summary{}, err
	}
	sum := summarize(fs, reasons)
	if b, err = json.MarshalIndent(sum, "", "  "); err != nil {
		return sum, err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), b, 0o644); err != nil {
		return sum, fmt.Errorf("results: %w", err)
	}
	if err := writeJUnit(filepath.Join(dir, "junit.xml"), site.Name, fs, sum); err != nil {
		return sum, fmt.Errorf("results: junit.xml: %w", err)
	}
	return sum, nil
}

// addNotRun adds a scenario that did not run to godog's cucumber JSON
// (under its feature, added when no scenario of it ran), every step
// skipped.
func addNotRun(raw []map[string]any, p Planned) []map[string]any {
	tags := func(ts []string, line int) []any {
		out := []any{}
		for _, t := range ts {
			out = append(out, map[string]any{"name": t, "line": line})
		}
		return out
	}
	stepsOut := []any{}
	for _, s := range p.Scenario.Steps {
		stepsOut = append(stepsOut, map[string]any{"keyword": s.Keyword, "name": s.Text, "line": s.Line,
			"result": map[string]any{"status": statusSkipped}})
	}
	el := map[string]any{"id": slug(p.Feature.Name) + ";" + slug(p.Scenario.Name), "keyword": "Scenario",
		"name": p.Scenario.Name, "description": "", "line": p.Scenario.Line, "type": "scenario",
		"tags": tags(p.Scenario.Tags, p.Scenario.Line), "steps": stepsOut}
	for _, f := range raw {
		if f["uri"] == p.Feature.File {
			els, _ := f["elements"].([]any)
			f["elements"] = append(els, el)
			return raw
		}
	}
	return append(raw, map[string]any{"uri": p.Feature.File, "id": slug(p.Feature.Name), "keyword": "Feature",
		"name": p.Feature.Name, "description": "", "line": p.Feature.Line, "tags": tags(p.Feature.Tags, p.Feature.Line),
		"elements": []any{el}})
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	return strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// outcome is a scenario's status from its steps: failed when one failed
// (or is undefined, pending, ambiguous), else skipped when one was
// skipped, else passed.
func outcome(e cukeElement) (status, reason string) {
	status = statusPassed
	for _, s := range e.Steps {
		switch s.Result.Status {
		case statusPassed:
		case statusSkipped:
			if status == statusPassed {
				status, reason = statusSkipped, "step skipped: "+strings.TrimSpace(s.Keyword)+" "+s.Name
			}
		default:
			if status != statusFailed {
				status, reason = statusFailed, s.Result.Status+": "+strings.TrimSpace(s.Keyword)+" "+s.Name
				if s.Result.Error != "" {
					reason += ": " + s.Result.Error
				}
			}
		}
	}
	if len(e.Steps) == 0 {
		return statusFailed, "no steps"
	}
	return status, reason
}

func summarize(fs []cukeFeature, notRun map[string]string) Summary {
	var sum Summary
	for _, f := range fs {
		for _, e := range f.Elements {
			if e.Type != "" && e.Type != "scenario" {
				continue
			}
			o := ScenarioOutcome{Feature: f.Name, URI: f.URI, Name: e.Name}
			o.Status, o.Reason = outcome(e)
			if why, ok := notRun[f.URI+"\x00"+e.Name]; ok && o.Status == statusSkipped {
				o.Reason = "not run: " + why
			}
			for _, s := range e.Steps {
				o.Duration += time.Duration(s.Result.Duration)
			}
			switch o.Status {
			case statusPassed:
				sum.Passed++
			case statusFailed:
				sum.Failed++
			default:
				sum.Skipped++
			}
			sum.Scenarios = append(sum.Scenarios, o)
		}
	}
	return sum
}

// JUnit XML, as Jenkins and GitLab read it.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Status    string        `xml:"status,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// writeJUnit writes the run's junit.xml: one suite per feature, a
// skipped scenario with a <skipped> element, never as passed.
func writeJUnit(path, site string, fs []cukeFeature, sum Summary) error {
	byName := map[string]ScenarioOutcome{}
	for _, o := range sum.Scenarios {
		byName[o.URI+"\x00"+o.Name] = o
	}
	all := junitSuites{Name: "bmi-uat " + site}
	var total time.Duration
	for _, f := range fs {
		s := junitSuite{Name: f.Name}
		var st time.Duration
		for _, e := range f.Elements {
			o, ok := byName[f.URI+"\x00"+e.Name]
			if !ok {
				continue
			}
			c := junitCase{Name: e.Name, Classname: f.Name, Status: o.Status, Time: seconds(o.Duration)}
			switch o.Status {
			case statusFailed:
				c.Failure, s.Failures = &junitMessage{Message: o.Reason}, s.Failures+1
			case statusSkipped:
				c.Skipped, s.Skipped = &junitMessage{Message: o.Reason}, s.Skipped+1
			}
			s.Tests++
			st += o.Duration
			s.Cases = append(s.Cases, c)
		}
		s.Time = seconds(st)
		all.Tests, all.Failures, all.Skipped, total = all.Tests+s.Tests, all.Failures+s.Failures, all.Skipped+s.Skipped, total+st
		all.Suites = append(all.Suites, s)
	}
	all.Time = seconds(total)
	b, err := xml.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(b, '\n')...), 0o644)
}

// godogScenarioCount is godog's summary line of scenarios ("3 scenarios
// (3 passed)"), which counts skipped scenarios as passed.
var godogScenarioCount = regexp.MustCompile(`^\d+ scenarios? \(`)

// dropLines passes what is written to w line by line, leaving out the
// lines drop matches. Flush writes a last unterminated line.
type dropLines struct {
	w    io.Writer
	drop *regexp.Regexp
	buf  []byte
}

func (d *dropLines) Write(p []byte) (int, error) {
	d.buf = append(d.buf, p...)
	for {
		i := bytes.IndexByte(d.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := d.buf[:i+1]
		if !d.drop.Match(line) {
			if _, err := d.w.Write(line); err != nil {
				return len(p), err
			}
		}
		d.buf = d.buf[i+1:]
	}
}

// Flush writes what is left.
func (d *dropLines) Flush() {
	if len(d.buf) > 0 && !d.drop.Match(d.buf) {
		_, _ = d.w.Write(d.buf)
	}
	d.buf = nil
}
