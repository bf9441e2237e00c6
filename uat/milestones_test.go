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
