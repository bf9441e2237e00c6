package bench

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// drawChart draws the section as a grouped bar chart (one group per case,
// one bar per subject) into file; the format follows its extension.
func drawChart(file string, s *Section) error {
	var cases, subjects []string
	seen := map[string]bool{}
	for _, r := range s.Rows {
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
	p.Legend.Top = true
	w := vg.Points(float64(min(40, 400/max(1, len(cases)*len(subjects)))))
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
	if err := p.Save(8*vg.Inch, 4.5*vg.Inch, file); err != nil {
		return fmt.Errorf("chart %s: %w", s.ID, err)
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
