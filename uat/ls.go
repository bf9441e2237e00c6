package uat

import (
	"bufio"
	"fmt"
	"io/fs"
	"strings"

	"github.com/bmi-go/bmi/features"
	"github.com/bmi-go/bmi/steps"
)

// Scenario is one scenario (or outline) of a feature file.
type Scenario struct {
	Name  string
	Tags  []string // its own and its feature's
	Line  int
	Steps []StepLine // the Background's steps, then its own
}

// StepLine is one step of a feature file, as written.
type StepLine struct {
	Keyword, Text string
	Line          int
}

// Feature is one embedded feature file.
type Feature struct {
	File      string
	Name      string
	Tags      []string
	Line      int
	Scenarios []Scenario
}

// Features lists the embedded features, their scenarios and tags.
func Features() ([]Feature, error) { return featuresOf(features.FS) }

func featuresOf(fsys fs.FS) ([]Feature, error) {
	files, err := fs.Glob(fsys, "*.feature")
	if err != nil {
		return nil, err
	}
	var out []Feature
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		out = append(out, parseFeature(f, string(b)))
	}
	return out, nil
}

var stepKeywords = []string{"Given ", "When ", "Then ", "And ", "But ", "* "}

// parseFeature reads the names, tags and steps of a Gherkin file (enough
// for a listing and for reporting scenarios that did not run; godog
// parses the files for real when it runs them).
func parseFeature(file, text string) Feature {
	ft := Feature{File: file}
	var pending []string
	var background []StepLine
	inBackground := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "@"):
			pending = append(pending, strings.Fields(line)...)
		case strings.HasPrefix(line, "Feature:"):
			ft.Name, ft.Tags, ft.Line, pending = strings.TrimSpace(strings.TrimPrefix(line, "Feature:")), pending, n, nil
		case strings.HasPrefix(line, "Background:"):
			inBackground = true
		case strings.HasPrefix(line, "Scenario:"), strings.HasPrefix(line, "Scenario Outline:"):
			inBackground = false
			_, name, _ := strings.Cut(line, ":")
			tags := append(append([]string{}, ft.Tags...), pending...)
			ft.Scenarios = append(ft.Scenarios, Scenario{Name: strings.TrimSpace(name), Tags: tags, Line: n,
				Steps: append([]StepLine{}, background...)})
			pending = nil
		default:
			for _, k := range stepKeywords {
				if !strings.HasPrefix(line, k) {
					continue
				}
				st := StepLine{Keyword: k, Text: strings.TrimPrefix(line, k), Line: n}
				if inBackground {
					background = append(background, st)
				} else if len(ft.Scenarios) > 0 {
					last := &ft.Scenarios[len(ft.Scenarios)-1]
					last.Steps = append(last.Steps, st)
				}
				break
			}
		}
	}
	return ft
}

// Planned is what a run on a site does with one scenario.
type Planned struct {
	Feature  Feature
	Scenario Scenario
	// Missing are the capabilities the scenario needs and the site
	// lacks: it is not run there (reported skipped).
	Missing []steps.Capability
}

// Runs says whether the scenario runs on the site.
func (p Planned) Runs() bool { return len(p.Missing) == 0 }

// Why says why a scenario does not run ("" when it does).
func (p Planned) Why(site string) string {
	if p.Runs() {
		return ""
	}
	var parts []string
	for _, c := range p.Missing {
		parts = append(parts, fmt.Sprintf("%s (%s)", c, c.Means()))
	}
	return fmt.Sprintf("needs %s: site %s lacks it", strings.Join(parts, ", "), site)
}

// Plan lists every scenario of feats with what the site lacks to run it.
func Plan(site *steps.Site, feats []Feature) []Planned {
	var out []Planned
	for _, f := range feats {
		for _, s := range f.Scenarios {
			out = append(out, Planned{Feature: f, Scenario: s, Missing: site.Missing(steps.Needs(s.Tags))})
		}
	}
	return out
}

// matchTags says whether a scenario with tags is selected by a godog tag
// filter ("@a && ~@b", "@a,@b" for either), as godog reads it.
func matchTags(filter string, tags []string) bool {
	if strings.TrimSpace(filter) == "" {
		return true
	}
	has := func(t string) bool {
		for _, x := range tags {
			if strings.ReplaceAll(x, "@", "") == t {
				return true
			}
		}
		return false
	}
	for _, and := range strings.Split(filter, "&&") {
		ok := false
		for _, t := range strings.Split(and, ",") {
			t = strings.ReplaceAll(strings.TrimSpace(t), "@", "")
			if strings.HasPrefix(t, "~") {
				ok = ok || !has(t[1:])
			} else {
				ok = ok || has(t)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
