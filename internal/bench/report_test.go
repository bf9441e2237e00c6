package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	for name, tc := range map[string]struct {
		in      []float64
		p, want float64
	}{
		"odd median":  {[]float64{1, 2, 3}, 0.5, 2},
		"even median": {[]float64{1, 2, 3, 4}, 0.5, 2.5},
		"p95 of 10":   {[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.95, 10},
		"p95 of 20":   {[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, 0.95, 19},
		"single":      {[]float64{7}, 0.95, 7},
	} {
		if got := Percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("%s: Percentile(%v, %v) = %v, want %v", name, tc.in, tc.p, got, tc.want)
		}
	}
}

// TestWrite: a report with two sections writes parseable JSON, a summary
// with every row and ratio, and an SVG chart per charted section.
func TestWrite(t *testing.T) {
	r := &Report{Started: time.Unix(0, 0), Finished: time.Unix(60, 0), Quick: true, Machine: Machine{Cores: 2, Virt: "TCG", Versions: map[string]string{"go": "go1.26"}}}
	s := &Section{ID: "1-provision", Title: "Provision latency", Compares: "bmi vs librbd", Chart: &Chart{File: "provision.svg", YLabel: "ms"},
		Load: &Load{Start: 1.5, End: 2, Max: 3.25}}
	for _, c := range []string{"1 GiB", "100 GiB"} {
		s.Add(Durations(c, "bmi create-disk", "ms", []time.Duration{100 * time.Millisecond, 120 * time.Millisecond, 300 * time.Millisecond}))
		s.Add(Durations(c, "librbd clone (baseline)", "ms", []time.Duration{10 * time.Millisecond, 30 * time.Millisecond}))
	}
	s.Ratio("100 GiB / 1 GiB (bmi median)", s.Find("100 GiB", "bmi create-disk").Median, s.Find("1 GiB", "bmi create-disk").Median)
	s.Ratio("skipped: divides by zero", 1, 0)
	s.Note("a note")
	api := &Section{ID: "6-api", Title: "API", Compares: "list vs healthz", Embedded: "| a | b |\n|---|---|\n| 1 | 2 |\n"}
	api.Add(Row{Case: "200 clients", Subject: "list", Unit: "ms", N: 5, Extra: map[string]float64{"req/s": 1000}})
	r.Sections = []*Section{api, s}
	r.SortSections()
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	var back Report
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Sections) != 2 || back.Sections[0].Rows[0].Median != 120 || back.Sections[0].Rows[0].P95 != 300 {
		t.Fatalf("results.json: %+v", back.Sections[0])
	}
	if len(back.Sections[0].Ratios) != 1 || back.Sections[0].Ratios[0].Value != 1 {
		t.Fatalf("ratios: %+v", back.Sections[0].Ratios)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "summary.md"))
	for _, want := range []string{"quick run", "| 100 GiB | librbd clone (baseline) | 2 | 20.0 ms | 30.0 ms |", "**100 GiB / 1 GiB (bmi median)**: 1.00",
		"- a note", "Load average during the run: 1.50 at the start, 2.00 at the end, 3.25 at most (1-min).", "![Provision latency](provision.svg)", "req/s 1000", "| 1 | 2 |", "| 1-provision | 100 GiB / 1 GiB (bmi median) | 1.00 |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
	if png, err := os.ReadFile(filepath.Join(dir, "provision.png")); err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Fatalf("provision.png: %v", err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "provision.svg"))
	if err != nil || !strings.Contains(string(svg), "<svg") || !strings.Contains(string(svg), "librbd clone (baseline)") {
		t.Fatalf("provision.svg: %v\n%.200s", err, svg)
	}
}

func TestSortSections(t *testing.T) {
	r := &Report{}
	for _, id := range []string{"10-scale", "2-install", "8b-restart", "1-provision", "8a-serve", "11-firmware", "9-origstack"} {
		r.Sections = append(r.Sections, &Section{ID: id})
	}
	r.SortSections()
	var got []string
	for _, s := range r.Sections {
		got = append(got, s.ID)
	}
	if want := "1-provision 2-install 8a-serve 8b-restart 9-origstack 10-scale 11-firmware"; strings.Join(got, " ") != want {
		t.Fatalf("sorted %v, want %s", got, want)
	}
}
