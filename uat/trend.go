package uat

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// trendView is the run-over-run page of several runs (oldest first):
// per run its verdict and counts, per scenario its outcome and duration
// in each run, its pass rate over the runs it ran in and its durations
// as a small chart.
type trendView struct {
	Runs      []trendRun
	Scenarios []trendScenario
}

type trendRun struct {
	Name, Site, Verdict     string
	Passed, Failed, Skipped int
	Duration                time.Duration
}

type trendScenario struct {
	Feature, Name string
	Cells         []trendCell
	PassRate      string // "3/4 (75%)" over the runs it ran in
	Width, Height int
	Bars          []trendBar
}

type trendCell struct {
	Status   string // passed, failed, skipped, or "" (not in that run)
	Duration time.Duration
}

type trendBar struct {
	X, Y, W, H int
	Status     string
	Title      string
}

//go:embed trend.html.tmpl
var trendTmplText string

var trendTmpl = template.Must(template.New("trend").Funcs(template.FuncMap{
	"dur": func(d time.Duration) string { return d.Round(time.Millisecond).String() },
}).Parse(trendTmplText))

// runSummary reads a run directory's summary.json, or derives it from
// its cucumber.json (runs of an older bmi-uat).
func runSummary(dir string) (Summary, error) {
	if s, err := ReadSummary(dir); err == nil {
		return s, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "cucumber.json"))
	if err != nil {
		return Summary{}, fmt.Errorf("%s: no summary.json or cucumber.json: %w", dir, err)
	}
	var fs []cukeFeature
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &fs); err != nil {
			return Summary{}, fmt.Errorf("%s: cucumber.json: %w", dir, err)
		}
	}
	return summarize(fs, nil), nil
}

// WriteTrend renders path (an HTML page) from several run directories:
// duration and outcome of every scenario in every run, and its pass rate.
func WriteTrend(path string, dirs []string) error {
	if len(dirs) < 2 {
		return fmt.Errorf("a trend needs two runs at least, got %d", len(dirs))
	}
	sorted := append([]string(nil), dirs...)
	sort.Slice(sorted, func(i, j int) bool { return filepath.Base(sorted[i]) < filepath.Base(sorted[j]) })
	var v trendView
	index := map[string]int{}
	for ri, dir := range sorted {
		info, err := ReportInfoFor(dir)
		if err != nil {
			return err
		}
		sum, err := runSummary(dir)
		if err != nil {
			return err
		}
		run := trendRun{Name: filepath.Base(filepath.Clean(dir)), Site: info.Site, Verdict: info.Verdict,
			Passed: sum.Passed, Failed: sum.Failed, Skipped: sum.Skipped}
		for _, o := range sum.Scenarios {
			run.Duration += o.Duration
			k := o.URI + "\x00" + o.Name
			i, ok := index[k]
			if !ok {
				i = len(v.Scenarios)
				index[k] = i
				v.Scenarios = append(v.Scenarios, trendScenario{Feature: o.Feature, Name: o.Name, Cells: make([]trendCell, len(sorted))})
			}
			c := &v.Scenarios[i].Cells[ri]
			if c.Status == "" || o.Status == statusFailed || (o.Status == statusSkipped && c.Status == statusPassed) {
				c.Status = o.Status // an outline's examples: the worst
			}
			c.Duration += o.Duration
		}
		v.Runs = append(v.Runs, run)
	}
	const bw, gap, height = 14, 4, 40
	for i := range v.Scenarios {
		s := &v.Scenarios[i]
		ran, passed := 0, 0
		var longest time.Duration
		for _, c := range s.Cells {
			longest = max(longest, c.Duration)
			if c.Status == statusPassed || c.Status == statusFailed {
				ran++
			}
			if c.Status == statusPassed {
				passed++
			}
		}
		s.PassRate = "not run"
		if ran > 0 {
			s.PassRate = fmt.Sprintf("%d/%d (%d%%)", passed, ran, passed*100/ran)
		}
		s.Width, s.Height = len(s.Cells)*(bw+gap)+gap, height
		for ci, c := range s.Cells {
			h := 1
			if longest > 0 {
				h = max(1, int(int64(c.Duration)*int64(height-4)/int64(longest)))
			}
			s.Bars = append(s.Bars, trendBar{X: gap + ci*(bw+gap), Y: height - 2 - h, W: bw, H: h, Status: c.Status,
				Title: fmt.Sprintf("%s: %s %s", v.Runs[ci].Name, c.Status, c.Duration.Round(time.Millisecond))})
		}
	}
	var out bytes.Buffer
	if err := trendTmpl.Execute(&out, v); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}
