package uat

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// milestonesView is one boot of one node as BMI's timeline saw it (the
// step attachment <node>.timeline.txt the boot steps write): each
// milestone at its time from the first.
type milestonesView struct {
	Node, Scenario string
	Width, Height  int
	Total          time.Duration
	Marks          []markView
}

type markView struct {
	Label, Detail string
	At            time.Duration
	X, Y, LabelY  int
}

var (
	timelineAttachment = regexp.MustCompile(`^(.+)\.timeline\.txt$`)
	// "+   1.234s  2026-12-07T06:13:47.817Z  iscsi-login  ipxe  detail"
	timelineLine = regexp.MustCompile(`^\+\s*([0-9.]+)s\s+\S+\s+(\S+)\s+(pxe-rom|ipxe|os)?\s*(.*)$`)
)

// milestones reads a timeline attachment into a chart: one row per
// milestone, a mark at its time.
func milestones(node, scenario, text string) (milestonesView, bool) {
	const left, width, row = 260, 560, 20
	m := milestonesView{Node: node, Scenario: scenario}
	for _, line := range strings.Split(text, "\n") {
		p := timelineLine.FindStringSubmatch(line)
		if p == nil {
			continue
		}
		sec, err := strconv.ParseFloat(p[1], 64)
		if err != nil {
			continue
		}
		label := p[2]
		if p[3] != "" {
			label += " (" + p[3] + ")"
		}
		at := time.Duration(sec * float64(time.Second))
		m.Marks = append(m.Marks, markView{Label: label, Detail: strings.TrimSpace(p[4]), At: at})
		m.Total = max(m.Total, at)
	}
	if len(m.Marks) == 0 {
		return m, false
	}
	for i := range m.Marks {
		mk := &m.Marks[i]
		mk.X = left
		if m.Total > 0 {
			mk.X = left + int(int64(mk.At)*width/int64(m.Total))
		}
		mk.Y = 10 + i*row
		mk.LabelY = mk.Y + 12
	}
	m.Width, m.Height = left+width+90, 20+len(m.Marks)*row
	return m, true
}
