package uat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReportMilestones: a boot step's timeline attachment (as the boot
// steps write it) becomes a chart of BMI's milestones in the report.
func TestReportMilestones(t *testing.T) {
	attachment := "BMI's boot timeline of node-01 (GET .../nodes/node-01/timeline)\n" +
		"+   0.000s  2026-12-07T06:13:47.165Z  dhcp-discover        ipxe     \n" +
		"+   0.283s  2026-12-07T06:13:47.448Z  ipxe-script-served            /boot/52-54-a0-72-00-01.ipxe\n" +
		"+   0.652s  2026-12-07T06:13:47.817Z  iscsi-login          ipxe     iqn.x:node-01 10.77.0.100 4000272367ff\n" +
		"+  56.744s  2026-12-07T06:14:43.909Z  iscsi-login          os       iqn.x:node-01 10.77.0.100 00023d000001\n"
	cuke := []map[string]any{{"uri": "end-to-end.feature", "name": "End to end", "elements": []any{map[string]any{
		"name": "Nodes boot", "type": "scenario", "steps": []any{map[string]any{
			"keyword": "And ", "name": "node A boots to its marker", "result": map[string]any{"status": "passed", "duration": 57e9},
			"embeddings": []any{map[string]any{"mime_type": "text/plain", "name": "node-A.timeline.txt", "data": []byte(attachment)}},
		}}}}}}
	dir := filepath.Join(t.TempDir(), "20261207T060000Z-lab-PASS")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cuke)
	if err := os.WriteFile(filepath.Join(dir, "cucumber.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(dir, ReportInfo{Site: "lab", Verdict: "PASS"}); err != nil {
		t.Fatal(err)
	}
	page := readFile(t, dir, "report.html")
	for _, want := range []string{
		"<h3>node A: Nodes boot (56.744s from the first DHCP to the last login)</h3>",
		`>iscsi-login (os)</text>`,
		`<title>iscsi-login (os) at +56.744s iqn.x:node-01 10.77.0.100 00023d000001</title>`,
		`>ipxe-script-served</text>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	m, ok := milestones("A", "s", attachment)
	if !ok || len(m.Marks) != 4 || m.Total != 56744*time.Millisecond || m.Marks[3].X <= m.Marks[2].X {
		t.Errorf("milestones = %+v", m)
	}
	if _, ok := milestones("A", "s", "no timeline here"); ok {
		t.Error("milestones of a text without events")
	}
}

// TestTrend renders the trend of three runs: per scenario its outcome in
// each, its pass rate over the runs it ran in (skipped runs do not count).
func TestTrend(t *testing.T) {
	root := t.TempDir()
	runs := []struct {
		name string
		sum  Summary
	}{
		{"20261201T000000Z-lab-PASS", Summary{Passed: 1, Skipped: 1, Scenarios: []ScenarioOutcome{
			{URI: "a.feature", Feature: "A", Name: "boots", Status: statusPassed, Duration: 60 * time.Second},
			{URI: "a.feature", Feature: "A", Name: "HIL is down", Status: statusSkipped}}}},
		{"20261202T000000Z-lab-FAIL", Summary{Failed: 1, Passed: 1, Scenarios: []ScenarioOutcome{
			{URI: "a.feature", Feature: "A", Name: "boots", Status: statusFailed, Duration: 90 * time.Second},
			{URI: "a.feature", Feature: "A", Name: "HIL is down", Status: statusPassed, Duration: 5 * time.Second}}}},
		{"20261203T000000Z-lab-PASS", Summary{Passed: 2, Scenarios: []ScenarioOutcome{
			{URI: "a.feature", Feature: "A", Name: "boots", Status: statusPassed, Duration: 70 * time.Second},
			{URI: "a.feature", Feature: "A", Name: "HIL is down", Status: statusPassed, Duration: 6 * time.Second}}}},
	}
	var dirs []string
	for i := len(runs) - 1; i >= 0; i-- { // given newest first: the page sorts
		d := filepath.Join(root, runs[i].name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(runs[i].sum)
		if err := os.WriteFile(filepath.Join(d, "summary.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	out := filepath.Join(root, "trend.html")
	if err := WriteTrend(out, dirs); err != nil {
		t.Fatal(err)
	}
	page := readFile(t, root, "trend.html")
	for _, want := range []string{
		"<h1>bmi-uat: 3 runs, oldest first</h1>",
		`<td>boots <small>(A)</small></td><td>2/3 (66%)</td>`,
		`<td>HIL is down <small>(A)</small></td><td>2/2 (100%)</td>`,
		`<td class="failed">failed 1m30s</td>`,
		`<title>20261202T000000Z-lab-FAIL: failed 1m30s</title>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("trend lacks %q", want)
		}
	}
	if strings.Index(page, "20261201T000000Z-lab-PASS") > strings.Index(page, "20261203T000000Z-lab-PASS") {
		t.Error("runs not oldest first")
	}
	if err := WriteTrend(out, dirs[:1]); err == nil {
		t.Error("a trend of one run")
	}
}
