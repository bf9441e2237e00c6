package bench

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// drawChart draws the section as a grouped bar chart (one group per case,
// one bar per subject) into file (SVG) and the same name with .png.
func drawChart(file string, s *Section) error {
	var cases, subjects []string
	seen := map[string]bool{}
	rows := s.Rows
	if s.Chart.Unit != "" {
		rows = nil
		for _, r := range s.Rows {
			if r.Unit == s.Chart.Unit {
				rows = append(rows, r)
			}
		}
	}
	for _, r := range rows {
		if !seen["c"+r.Case] {
			seen["c"+r.Case] = true
			cases = append(cases, r.Case)
		}
		if !seen["s"+r.Subject] {
			seen["s"+r.Subject] = true
			subjects = append(subjects, r.Subject)
		}
	}
	p := plot.New()
	p.Title.Text = s.Title
	p.Y.Label.Text = s.Chart.YLabel
	p.Y.Min = 0
	p.Legend.Top, p.Legend.Left = true, true
	top := 0.0
	for _, r := range rows {
		top = max(top, stat(r, s.Chart.Stat))
	}
	p.Y.Max = top * 1.25 // room for the legend
	w := vg.Points(float64(min(40, 380/max(1, len(cases)*len(subjects)))))
	for i, sub := range subjects {
		vals := make(plotter.Values, len(cases))
		for j, c := range cases {
			if r := s.Find(c, sub); r != nil {
				vals[j] = stat(*r, s.Chart.Stat)
			}
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return fmt.Errorf("chart %s: %w", s.ID, err)
		}
		bars.LineStyle.Width = vg.Length(0)
		bars.Color = plotutil.Color(i)
		bars.Offset = w * vg.Length(float64(i)-float64(len(subjects)-1)/2)
		p.Add(bars)
		p.Legend.Add(sub, bars)
	}
	p.NominalX(cases...)
	p.X.Min, p.X.Max = -0.5, float64(len(cases))-0.5 // half a group of room each side
	// the SVG, and a PNG next to it for viewers without SVG
	for _, f := range []string{file, strings.TrimSuffix(file, filepath.Ext(file)) + ".png"} {
		if err := p.Save(8*vg.Inch, 4.5*vg.Inch, f); err != nil {
			return fmt.Errorf("chart %s: %w", s.ID, err)
		}
	}
	return nil
}

func stat(r Row, name string) float64 {
	v := r.Median
	if name != "" && name != "median" {
		v = r.Extra[name]
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
