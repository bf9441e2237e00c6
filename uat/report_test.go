package uat

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const fixtureRun = "testdata/report/20260101T120000Z-fixture-round2-FAIL"

// copyDir copies a fixture run directory so the test writes its report
// elsewhere.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestReportFromFixture(t *testing.T) {
	dir := copyDir(t, fixtureRun)
	info, err := ReportInfoFor(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ReportInfo{Site: "fixture", Seed: 424242, Round: 2, Verdict: "FAIL"}); info != want {
		t.Fatalf("ReportInfoFor = %+v, want %+v", info, want)
	}
	if err := WriteReport(dir, info); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	wellFormed(t, got)
	page := string(got)
	for _, want := range []string{
		"bmi-uat: site fixture",
		"424242 (replay with --seed 424242)",
		`<tr><th>scenarios</th><td>3 (1 failed, 0 skipped)</td></tr>`,
		`<span class="passed">5 passed</span>`,
		`<span class="failed">1 failed</span>`,
		`<span class="skipped">1 skipped</span>`,
		`<tr><th>duration</th><td>43.055s</td></tr>`,
		`<tr><th>round</th><td>2</td></tr>`,
		`<td class="FAIL">FAIL</td>`,
		// the failure, its error escaped, and node B's console without escapes
		`<h3 class="failed">Node B boots from A&#39;s snapshot</h3>`,
		`node B: no marker within 30s &lt;timeout&gt;`,
		"console node-B.console.log (last lines)",
		"BMI-MARKER node A &lt;ok&gt;",
		// a timeline per booted node, the boot step highlighted
		`<h3>node A: Node A boots to its marker (12.751s)</h3>`,
		`<h3>node B: Node B boots from A&#39;s snapshot (30.3s)</h3>`,
		`fill="#1f6fd1"><title>Then node A boots to its marker: 12.5s</title>`,
		`fill="#b00020"><title>Then node B boots and shows node A&#39;s state record: 30s</title>`,
		// every feature, scenario and step
		"<h3>Errors operators hit <small>(errors.feature) @errors</small></h3>",
		`<tr><td>When I import an image called &#34;a/b&#34;</td><td class="passed">passed</td><td>4ms</td></tr>`,
		`<tr><td>And BMI, Ceph, iSCSI and HIL agree</td><td class="skipped">skipped</td><td>0s</td></tr>`,
		// the journal
		`uat-Xk3pQ9zLm2-b`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(page, "\x1b") || strings.Contains(page, "<script") || strings.Contains(page, "http://") && !strings.Contains(page, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Error("report has terminal escapes, scripts or external references")
	}
	golden := filepath.Join("testdata", "report", "report.golden.html")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("report.html differs from %s (run go test ./uat -run TestReportFromFixture -update to accept)", golden)
	}
}

// wellFormed checks the page is strict XML (every element closed, only
// XML entities) and that the HTML parser sees one svg per timeline.
func wellFormed(t *testing.T, page []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(page))
	d.Strict = true
	var stack []string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("report.html is not well-formed: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			stack = append(stack, tk.Name.Local)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		t.Fatalf("unclosed elements %v", stack)
	}
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	svgs := 0
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "svg" {
			svgs++
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if svgs != 2 {
		t.Errorf("%d svg charts, want 2 (nodes A and B)", svgs)
	}
}

func TestReportErrors(t *testing.T) {
	if _, err := ReportInfoFor(t.TempDir()); err == nil {
		t.Error("ReportInfoFor accepted a directory that is not a run's")
	}
	dir := filepath.Join(t.TempDir(), "20260101T120000Z-x-PASS")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(dir, ReportInfo{Site: "x"}); err == nil {
		t.Error("WriteReport without cucumber.json succeeded")
	}
	if err := os.WriteFile(filepath.Join(dir, "cucumber.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(dir, ReportInfo{Site: "x"}); err == nil || !strings.Contains(err.Error(), "cucumber.json") {
		t.Errorf("WriteReport of bad JSON: %v", err)
	}
}
