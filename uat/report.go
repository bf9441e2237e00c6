package uat

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ReportInfo is what a report says about its run beyond the cucumber
// JSON: the site, the seed of a randomised round, and the verdict.
type ReportInfo struct {
	Site    string
	Seed    uint64
	Round   int
	Verdict string // PASS, FAIL or RUNNING
}

// cucumber JSON, as godog writes it (only the fields the report uses)
type cukeFeature struct {
	URI      string        `json:"uri"`
	Name     string        `json:"name"`
	Tags     []cukeTag     `json:"tags"`
	Elements []cukeElement `json:"elements"`
}

type cukeTag struct {
	Name string `json:"name"`
}

type cukeElement struct {
	Name  string     `json:"name"`
	Type  string     `json:"type"`
	Tags  []cukeTag  `json:"tags"`
	Steps []cukeStep `json:"steps"`
}

type cukeStep struct {
	Keyword string `json:"keyword"`
	Name    string `json:"name"`
	Result  struct {
		Status   string `json:"status"`
		Duration int64  `json:"duration"`
		Error    string `json:"error_message"`
	} `json:"result"`
	Embeddings []struct {
		MimeType string `json:"mime_type"`
		Name     string `json:"name"`
		Data     []byte `json:"data"`
	} `json:"embeddings"`
}

// report view
type reportView struct {
	Info      ReportInfo
	Counts    map[string]int
	Scenarios int
	Failed    int
	Skipped   int
	Duration  time.Duration
	Features  []featureView
	Failures  []failureView
	Timelines []timelineView
	// Milestones are the boots BMI's node timeline saw, per node.
	Milestones []milestonesView
	Journal    []string
}

type featureView struct {
	Name, URI, Tags string
	Scenarios       []scenarioView
}

type scenarioView struct {
	Name, Tags, Status string
	Duration           time.Duration
	Steps              []stepView
}

type stepView struct {
	Text, Status string
	Duration     time.Duration
}

type failureView struct {
	Scenario, Step, Error string
	Consoles              []consoleView
}

type consoleView struct {
	Name, Excerpt string
}

type timelineView struct {
	Node, Scenario string
	Width, Height  int
	Bars           []barView
	Total          time.Duration
}

type barView struct {
	Label         string
	X, Y, W       int
	Boot, Failed  bool
	Duration      time.Duration
	TextX, LabelY int
}

//go:embed report.html.tmpl
var reportTmpl string

var tmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur": func(d time.Duration) string { return d.Round(time.Millisecond).String() },
}).Parse(reportTmpl))

// consoleExcerptLines is how much of a node console a failure shows.
const consoleExcerptLines = 40

// WriteReport renders dir/report.html from the run's cucumber.json,
// journal.jsonl and consoles/.
func WriteReport(dir string, info ReportInfo) error {
	b, err := os.ReadFile(filepath.Join(dir, "cucumber.json"))
	if err != nil {
		return fmt.Errorf("report for %s: %w", dir, err)
	}
	var fs []cukeFeature
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &fs); err != nil {
			return fmt.Errorf("report for %s: cucumber.json: %w", dir, err)
		}
	}
	v := buildView(fs, info, dir)
	var out bytes.Buffer
	if err := tmpl.Execute(&out, v); err != nil {
		return fmt.Errorf("report for %s: %w", dir, err)
	}
	return os.WriteFile(filepath.Join(dir, "report.html"), out.Bytes(), 0o644)
}

var nodeConsole = regexp.MustCompile(`^node-(.+)\.console\.log$`)

func buildView(fs []cukeFeature, info ReportInfo, dir string) reportView {
	v := reportView{Info: info, Counts: map[string]int{}}
	for _, f := range fs {
		fv := featureView{Name: f.Name, URI: f.URI, Tags: tagList(f.Tags)}
		for _, e := range f.Elements {
			if e.Type != "" && e.Type != "scenario" {
				continue
			}
			sv := scenarioView{Name: e.Name, Tags: tagList(e.Tags), Status: "passed"}
			lab := strings.Contains(" "+sv.Tags+" ", " @boots ") || strings.Contains(" "+sv.Tags+" ", " @lab ")
			var fail *failureView
			var consoles []consoleView
			nodes := map[string]bool{}
			var order []string
			for _, s := range e.Steps {
				d := time.Duration(s.Result.Duration)
				st := s.Result.Status
				v.Counts[st]++
				sv.Duration += d
				sv.Steps = append(sv.Steps, stepView{Text: s.Keyword + s.Name, Status: st, Duration: d})
				if st != "passed" && sv.Status == "passed" {
					sv.Status = st
				}
				if st == "failed" && fail == nil {
					fail = &failureView{Scenario: e.Name, Step: s.Keyword + s.Name, Error: s.Result.Error}
				}
				for _, em := range s.Embeddings {
					if m := timelineAttachment.FindStringSubmatch(em.Name); m != nil {
						if mv, ok := milestones(strings.TrimPrefix(m[1], "node-"), e.Name, string(em.Data)); ok {
							v.Milestones = append(v.Milestones, mv)
						}
					}
					if m := nodeConsole.FindStringSubmatch(em.Name); m != nil {
						if !nodes[m[1]] {
							order = append(order, m[1])
						}
						nodes[m[1]] = true
					}
					if strings.HasPrefix(em.MimeType, "text/") {
						consoles = append(consoles, consoleView{Name: em.Name, Excerpt: excerpt(string(em.Data))})
					}
				}
			}
			v.Scenarios++
			v.Duration += sv.Duration
			if st, _ := outcome(e); st == statusSkipped {
				sv.Status = statusSkipped
				v.Skipped++
			}
			if fail != nil {
				v.Failed++
				fail.Consoles = consoles
				if len(consoles) == 0 && lab {
					fail.Consoles = dirConsoles(dir)
				}
				v.Failures = append(v.Failures, *fail)
			}
			if lab {
				for _, n := range order {
					v.Timelines = append(v.Timelines, timeline(n, e))
				}
			}
			fv.Scenarios = append(fv.Scenarios, sv)
		}
		v.Features = append(v.Features, fv)
	}
	v.Journal = journalLines(filepath.Join(dir, "journal.jsonl"))
	return v
}

// timeline lays out the scenario's steps on a time axis (each bar starts
// where the previous step ended), highlighting the steps whose console
// attachment is this node's boot. The consoles carry no timestamps, so
// the step durations are the milestones.
func timeline(node string, e cukeElement) timelineView {
	const left, width, row = 330, 520, 22
	var total int64
	for _, s := range e.Steps {
		total += s.Result.Duration
	}
	t := timelineView{Node: node, Scenario: e.Name, Width: left + width + 90, Total: time.Duration(total)}
	var at int64
	for i, s := range e.Steps {
		d := s.Result.Duration
		x, w := left, 1
		if total > 0 {
			x = left + int(at*width/total)
			w = max(1, int(d*width/total))
		}
		boot := false
		for _, em := range s.Embeddings {
			if em.Name == "node-"+node+".console.log" {
				boot = true
			}
		}
		label := s.Keyword + s.Name
		if r := []rune(label); len(r) > 52 {
			label = string(r[:49]) + "..."
		}
		y := 10 + i*row
		t.Bars = append(t.Bars, barView{Label: label, X: x, Y: y, W: w, Boot: boot, Failed: s.Result.Status == "failed",
			Duration: time.Duration(d), TextX: x + w + 4, LabelY: y + 13})
		at += d
	}
	t.Height = 20 + len(e.Steps)*row
	return t
}

func tagList(ts []cukeTag) string {
	var s []string
	seen := map[string]bool{}
	for _, t := range ts {
		if !seen[t.Name] {
			s = append(s, t.Name)
			seen[t.Name] = true
		}
	}
	return strings.Join(s, " ")
}

var ansi = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[@-Z\\-_])`)

// excerpt is the last lines of a console, without terminal escapes and
// control characters.
func excerpt(s string) string {
	s = ansi.ReplaceAllString(s, "")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= ' ' && r != 0x7f) {
			return r
		}
		return -1
	}, s)
	lines := strings.Split(strings.TrimRight(s, "\n "), "\n")
	var out []string
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			out = append(out, strings.TrimRight(l, " "))
		}
	}
	if len(out) > consoleExcerptLines {
		out = out[len(out)-consoleExcerptLines:]
	}
	return strings.Join(out, "\n")
}

func dirConsoles(dir string) []consoleView {
	ms, _ := filepath.Glob(filepath.Join(dir, "consoles", "*.log"))
	var out []consoleView
	for _, m := range ms {
		if b, err := os.ReadFile(m); err == nil {
			out = append(out, consoleView{Name: "consoles/" + filepath.Base(m), Excerpt: excerpt(string(b))})
		}
	}
	return out
}

func journalLines(p string) []string {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

var runDir = regexp.MustCompile(`^\d{8}T\d{6}Z-(.+?)(?:-round(\d+))?-(PASS|FAIL|RUNNING)$`)

// ReportInfoFor reads a result directory's site, round and verdict from
// its name and the seed from its pretty.log.
func ReportInfoFor(dir string) (ReportInfo, error) {
	m := runDir.FindStringSubmatch(filepath.Base(filepath.Clean(dir)))
	if m == nil {
		return ReportInfo{}, fmt.Errorf("%s is not a run result directory (<timestamp>-<site>[-roundN]-<PASS|FAIL>)", dir)
	}
	info := ReportInfo{Site: m[1], Verdict: m[3]}
	info.Round, _ = strconv.Atoi(m[2])
	if b, err := os.ReadFile(filepath.Join(dir, "pretty.log")); err == nil {
		if s := seedLine.FindSubmatch(b); s != nil {
			info.Seed, _ = strconv.ParseUint(string(s[1]), 10, 64)
		}
	}
	return info, nil
}

var seedLine = regexp.MustCompile(`random names, seed (\d+)`)
