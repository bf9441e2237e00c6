// Package bench is the report side of `make bench`: figures measured side
// by side with their baseline in the same run, collected in a Report and
// written to test-results/bench/<timestamp>/ as results.json, summary.md
// and one SVG chart per section (gonum.org/v1/plot). The measurements
// themselves are benchmarks in this package's test files (build tag
// ceph_preview, run by `make bench`); nothing here asserts a time.
package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Report is one run of the benchmarks.
type Report struct {
	Started  time.Time  `json:"started"`
	Finished time.Time  `json:"finished"`
	Quick    bool       `json:"quick"`
	Machine  Machine    `json:"machine"`
	Sections []*Section `json:"sections"`
}

// Section is one benchmark: what it compares, its rows (each subject next
// to its baseline), the ratios that matter and the load while it ran.
type Section struct {
	ID       string `json:"id"`
	Title    string `json:"title"`
	Compares string `json:"compares"`
	// Load is nil when the section was measured elsewhere (a folded-in
	// report carries its own).
	Load   *Load    `json:"load,omitempty"`
	Rows   []Row    `json:"rows"`
	Ratios []Ratio  `json:"ratios,omitempty"`
	Notes  []string `json:"notes,omitempty"`
	// Embedded is Markdown carried over as is (another package's table).
	Embedded string `json:"embedded_markdown,omitempty"`
	// Chart, when set, is drawn as a grouped bar chart: one group per
	// distinct Row.Case, one bar per Row.Subject, the value ChartStat.
	Chart *Chart `json:"chart,omitempty"`
}

// Row is one measured subject in one case, e.g. case "100 GiB", subject
// "bmi create-disk" or "librbd clone (baseline)".
type Row struct {
	Case    string  `json:"case"`
	Subject string  `json:"subject"`
	Unit    string  `json:"unit"`
	N       int     `json:"n"`
	Median  float64 `json:"median"`
	P95     float64 `json:"p95"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Errors  int     `json:"errors,omitempty"`
	// Extra holds figures that are not a distribution (p99, req/s, RSS...).
	Extra map[string]float64 `json:"extra,omitempty"`
}

// Ratio is a derived comparison, e.g. "100 GiB / 1 GiB create-disk median".
type Ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Chart describes the section's chart.
type Chart struct {
	File   string `json:"file"`
	YLabel string `json:"y_label"`
	// Stat is "median" (default) or a key of Row.Extra.
	Stat string `json:"stat,omitempty"`
	// Unit, when set, keeps the rows of other units out of the chart.
	Unit string `json:"unit,omitempty"`
}

// Add appends a row.
func (s *Section) Add(r Row) { s.Rows = append(s.Rows, r) }

// Ratio appends a ratio a/b named name; nothing when b is 0.
func (s *Section) Ratio(name string, a, b float64) {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return
	}
	s.Ratios = append(s.Ratios, Ratio{Name: name, Value: a / b})
}

// Note appends a line of explanation.
func (s *Section) Note(format string, args ...any) {
	s.Notes = append(s.Notes, fmt.Sprintf(format, args...))
}

// Find returns the row of case and subject, or nil.
func (s *Section) Find(c, subject string) *Row {
	for i := range s.Rows {
		if s.Rows[i].Case == c && s.Rows[i].Subject == subject {
			return &s.Rows[i]
		}
	}
	return nil
}

// Durations summarizes samples as a row in unit (ms or s).
func Durations(c, subject, unit string, d []time.Duration) Row {
	scale := map[string]float64{"ms": 1e3, "s": 1}[unit]
	if scale == 0 {
		scale = 1e3
		unit = "ms"
	}
	v := make([]float64, len(d))
	for i, x := range d {
		v[i] = x.Seconds() * scale
	}
	return Values(c, subject, unit, v)
}

// Values summarizes samples as a row: median, p95 (nearest rank), min, max.
func Values(c, subject, unit string, v []float64) Row {
	r := Row{Case: c, Subject: subject, Unit: unit, N: len(v)}
	if len(v) == 0 {
		return r
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	r.Min, r.Max = s[0], s[len(s)-1]
	r.Median = Percentile(s, 0.5)
	r.P95 = Percentile(s, 0.95)
	return r
}

// Percentile of sorted values: the median averages the two middle values
// for an even count; other percentiles take the nearest rank.
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	if p == 0.5 {
		if n%2 == 1 {
			return sorted[n/2]
		}
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	k := int(math.Ceil(p*float64(n))) - 1
	return sorted[min(max(k, 0), n-1)]
}

// SortSections orders the sections by the number their id starts with
// (1-provision ... 12-provision-network), then by the rest of it.
func (r *Report) SortSections() {
	sort.SliceStable(r.Sections, func(i, j int) bool { return sectionLess(r.Sections[i].ID, r.Sections[j].ID) })
}

// sectionLess orders section ids by their leading number, then as text:
// "2-install" before "10-scale", "8a-serve" before "8b-restart".
func sectionLess(a, b string) bool {
	num := func(s string) (int, string) {
		n, i := 0, 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			n = n*10 + int(s[i]-'0')
		}
		return n, s[i:]
	}
	na, ra := num(a)
	nb, rb := num(b)
	if na != nb {
		return na < nb
	}
	return ra < rb
}

// Write writes results.json, summary.md and the charts into dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench report: %w", err)
	}
	var chartErrs []string
	for _, s := range r.Sections {
		if s.Chart == nil || len(s.Rows) == 0 {
			continue
		}
		if err := drawChart(filepath.Join(dir, s.Chart.File), s); err != nil {
			chartErrs = append(chartErrs, err.Error())
			s.Chart = nil
		}
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("bench report: %w", err)
	}
	if len(chartErrs) > 0 {
		return fmt.Errorf("bench report: charts: %s", strings.Join(chartErrs, "; "))
	}
	return nil
}

// Markdown renders the summary: machine, then each section's table,
// ratios and notes.
func (r *Report) Markdown() string {
	var b strings.Builder
	mode := "full"
	if r.Quick {
		mode = "quick"
	}
	fmt.Fprintf(&b, "# BMI benchmarks (%s run)\n\n", mode)
	fmt.Fprintf(&b, "Started %s, finished %s.\n\n", r.Started.UTC().Format(time.RFC3339), r.Finished.UTC().Format(time.RFC3339))
	b.WriteString(r.Machine.Markdown())
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n", s.Title, s.Compares)
		if s.Load != nil {
			fmt.Fprintf(&b, "Load average during the run: %s.\n\n", *s.Load)
		}
		if len(s.Rows) > 0 {
			b.WriteString("| case | subject | n | median | p95 | min | max | errors | other |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n")
			for _, row := range s.Rows {
				fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %d | %s |\n", row.Case, row.Subject, row.N,
					num(row.Median, row.Unit), num(row.P95, row.Unit), num(row.Min, row.Unit), num(row.Max, row.Unit), row.Errors, extra(row.Extra))
			}
			b.WriteString("\n")
		}
		for _, ra := range s.Ratios {
			fmt.Fprintf(&b, "- **%s**: %.2f\n", ra.Name, ra.Value)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		if s.Embedded != "" {
			fmt.Fprintf(&b, "\n%s\n", strings.TrimSpace(s.Embedded))
		}
		if s.Chart != nil {
			fmt.Fprintf(&b, "\n![%s](%s)\n", s.Title, s.Chart.File)
		}
	}
	if rs := r.allRatios(); len(rs) > 0 {
		b.WriteString("\n## Every ratio\n\n| section | ratio | value |\n|---|---|---:|\n")
		for _, x := range rs {
			fmt.Fprintf(&b, "| %s | %s | %.2f |\n", x[0], x[1], x[2])
		}
	}
	return b.String()
}

func (r *Report) allRatios() [][3]any {
	var out [][3]any
	for _, s := range r.Sections {
		for _, ra := range s.Ratios {
			out = append(out, [3]any{s.ID, ra.Name, ra.Value})
		}
	}
	return out
}

func num(v float64, unit string) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch {
	case v == 0:
		return "0 " + unit
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f %s", v, unit)
	default:
		return fmt.Sprintf("%.2f %s", v, unit)
	}
}

func extra(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.4g", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
