package uat

import (
	"bufio"
	"io/fs"
	"strings"

	"github.com/bmi-go/bmi/features"
)

// Scenario is one scenario (or outline) of a feature file.
type Scenario struct {
	Name string
	Tags []string // its own and its feature's
}

// Feature is one embedded feature file.
type Feature struct {
	File      string
	Name      string
	Tags      []string
	Scenarios []Scenario
}

// Features lists the embedded features, their scenarios and tags.
func Features() ([]Feature, error) {
	files, err := fs.Glob(features.FS, "*.feature")
	if err != nil {
		return nil, err
	}
	var out []Feature
	for _, f := range files {
		b, err := fs.ReadFile(features.FS, f)
		if err != nil {
			return nil, err
		}
		out = append(out, parseFeature(f, string(b)))
	}
	return out, nil
}

// parseFeature reads the names and tags of a Gherkin file (enough for a
// listing; godog parses the files for real when it runs them).
func parseFeature(file, text string) Feature {
	ft := Feature{File: file}
	var pending []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "@"):
			pending = append(pending, strings.Fields(line)...)
		case strings.HasPrefix(line, "Feature:"):
			ft.Name, ft.Tags, pending = strings.TrimSpace(strings.TrimPrefix(line, "Feature:")), pending, nil
		case strings.HasPrefix(line, "Scenario:"), strings.HasPrefix(line, "Scenario Outline:"):
			_, name, _ := strings.Cut(line, ":")
			tags := append(append([]string{}, ft.Tags...), pending...)
			ft.Scenarios = append(ft.Scenarios, Scenario{Name: strings.TrimSpace(name), Tags: tags})
			pending = nil
		}
	}
	return ft
}
