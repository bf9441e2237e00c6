package iscsi

import (
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/testenv"
)

// Real initiators: libiscsi's command-line tools (Debian libiscsi-bin)
// against the target on 127.0.0.1.

const initiatorIQN = "iqn.2026-11.org.test:libiscsi"

func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	testenv.RequireCommand(t, name, "libiscsi-bin")
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func url(addr, iqn string, c *CHAP) string {
	cred := ""
	if c != nil {
		cred = c.User + "%" + c.Secret + "@"
	}
	u := "iscsi://" + cred + addr
	if iqn != "" {
		u += "/" + iqn + "/0"
	}
	return u
}

// TestLibiscsiTools: discovery, inquiry and capacity with CHAP and ACLs.
func TestLibiscsiTools(t *testing.T) {
	testenv.RequireCommand(t, "iscsi-ls", "libiscsi-bin")
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(64 << 20), CHAP: nodeCHAP, Initiators: []string{initiatorIQN}})
	mustExport(t, tg, Export{IQN: testIQN(2), Volume: newMemVolume(32 << 20), Initiators: []string{initiatorIQN}})
	mustExport(t, tg, Export{IQN: testIQN(3), Volume: newMemVolume(16 << 20), Initiators: []string{"iqn.2026-11.org.test:someone-else"}})

	t.Run("discovery without chap", func(t *testing.T) {
		out, err := runTool(t, "iscsi-ls", "-i", initiatorIQN, url(addr, "", nil))
		if err != nil || !strings.Contains(out, testIQN(2)) || strings.Contains(out, testIQN(1)) || strings.Contains(out, testIQN(3)) {
			t.Fatalf("iscsi-ls: %v\n%s", err, out)
		}
	})
	t.Run("discovery with chap", func(t *testing.T) {
		out, err := runTool(t, "iscsi-ls", "-i", initiatorIQN, url(addr, "", nodeCHAP))
		if err != nil || !strings.Contains(out, testIQN(1)) || !strings.Contains(out, testIQN(2)) || strings.Contains(out, testIQN(3)) {
			t.Fatalf("iscsi-ls with CHAP: %v\n%s", err, out)
		}
	})
	t.Run("discovery wrong chap", func(t *testing.T) {
		out, err := runTool(t, "iscsi-ls", "-i", initiatorIQN, url(addr, "", &CHAP{User: "node7", Secret: "not-the-secret"}))
		if err == nil || strings.Contains(out, testIQN(1)) {
			t.Fatalf("iscsi-ls with a wrong secret succeeded:\n%s", out)
		}
	})
	t.Run("capacity with chap", func(t *testing.T) {
		out, err := runTool(t, "iscsi-readcapacity16", "-i", initiatorIQN, url(addr, testIQN(1), nodeCHAP))
		if err != nil || !strings.Contains(out, "Total size:67108864") {
			t.Fatalf("iscsi-readcapacity16: %v\n%s", err, out)
		}
	})
	t.Run("inquiry", func(t *testing.T) {
		out, err := runTool(t, "iscsi-inq", "-i", initiatorIQN, url(addr, testIQN(2), nil))
		if err != nil || !strings.Contains(out, "DIRECT_ACCESS") || !strings.Contains(out, "Vendor:BMI") {
			t.Fatalf("iscsi-inq: %v\n%s", err, out)
		}
	})
	t.Run("wrong chap refused", func(t *testing.T) {
		out, err := runTool(t, "iscsi-readcapacity16", "-i", initiatorIQN, url(addr, testIQN(1), &CHAP{User: "node7", Secret: "not-the-secret"}))
		if err == nil {
			t.Fatalf("login with a wrong secret succeeded:\n%s", out)
		}
	})
	t.Run("no chap refused", func(t *testing.T) {
		out, err := runTool(t, "iscsi-readcapacity16", "-i", initiatorIQN, url(addr, testIQN(1), nil))
		if err == nil {
			t.Fatalf("login without CHAP succeeded:\n%s", out)
		}
	})
	t.Run("foreign initiator refused and not listed", func(t *testing.T) {
		out, err := runTool(t, "iscsi-readcapacity16", "-i", "iqn.2026-11.org.test:intruder", url(addr, testIQN(2), nil))
		if err == nil {
			t.Fatalf("foreign initiator logged in:\n%s", out)
		}
		out, err = runTool(t, "iscsi-ls", "-i", "iqn.2026-11.org.test:intruder", url(addr, "", nil))
		if err != nil || strings.Contains(out, "Target:") {
			t.Fatalf("foreign initiator's discovery: %v\n%s", err, out)
		}
	})
}

// conformanceTests are the iscsi-test-cu suites that must all pass: the
// SCSI list of the spike (reference/ceph-spike.md §3) and every iSCSI suite.
var conformanceTests = "SCSI.Inquiry,SCSI.ReadCapacity10,SCSI.ReadCapacity16,SCSI.Read10,SCSI.Read16," +
	"SCSI.Write10,SCSI.Write16,SCSI.TestUnitReady,SCSI.ModeSense6,iSCSI"

// cunitRun is the part of CUnit's XML report we read.
type cunitRun struct {
	Suites []struct {
		Name    string `xml:"CUNIT_RUN_SUITE_SUCCESS>SUITE_NAME"`
		Records []struct {
			Pass *struct {
				Name string `xml:"TEST_NAME"`
			} `xml:"CUNIT_RUN_TEST_SUCCESS"`
			Fail *struct {
				Name      string `xml:"TEST_NAME"`
				File      string `xml:"FILE_NAME"`
				Line      string `xml:"LINE_NUMBER"`
				Condition string `xml:"CONDITION"`
			} `xml:"CUNIT_RUN_TEST_FAILURE"`
		} `xml:"CUNIT_RUN_SUITE_SUCCESS>CUNIT_RUN_TEST_RECORD"`
	} `xml:"CUNIT_RESULT_LISTING>CUNIT_RUN_SUITE"`
}

// TestConformance runs libiscsi's iscsi-test-cu against the target and
// writes pass/fail per test to test-results/iscsi-conformance.txt.
func TestConformance(t *testing.T) {
	testenv.RequireCommand(t, "iscsi-test-cu", "libiscsi-bin")
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(64 << 20)})
	results := runConformance(t, addr, testIQN(1), nil, conformanceTests)
	writeConformance(t, "in-memory volume", results)
}

// racyTests are iscsi-test-cu tests whose assertion depends on timing the
// target does not control: AbortTaskSimpleAsync queues a WRITE and an ABORT
// TASK for it back to back and asserts that the WRITE did not complete,
// which holds only if the abort reaches the target before the write has
// been executed and answered (on a loaded machine the write can win; then
// the target correctly answers the abort as "task does not exist"). Such a
// test that fails is run again on its own, up to twice, and the result line
// says so; failing every attempt fails the test.
var racyTests = map[string]bool{"iSCSI.iSCSITMF.AbortTaskSimpleAsync": true}

// runConformance runs iscsi-test-cu and returns "PASS name" / "FAIL name: why" lines.
func runConformance(t *testing.T, addr, iqn string, c *CHAP, tests string) []string {
	t.Helper()
	lines, failed := runCU(t, addr, iqn, c, tests)
	if len(lines) < 50 {
		t.Errorf("only %d test results", len(lines))
	}
	var still []string
	for _, name := range failed {
		if !racyTests[name] {
			still = append(still, name)
			continue
		}
		passed := false
		for attempt := 2; attempt <= 3 && !passed; attempt++ {
			again, f := runCU(t, addr, iqn, c, name)
			if len(again) == 1 && len(f) == 0 {
				passed = true
				t.Logf("%s lost its race on attempt 1 and passed on attempt %d", name, attempt)
				for i, l := range lines {
					if strings.HasPrefix(l, "FAIL "+name+":") {
						lines[i] = fmt.Sprintf("PASS %s (attempt %d; attempt 1: %s)", name, attempt, strings.TrimPrefix(l, "FAIL "+name+": "))
					}
				}
			}
		}
		if !passed {
			still = append(still, name)
		}
	}
	if len(still) > 0 {
		t.Errorf("%d conformance tests failed (%s):\n%s", len(still), strings.Join(still, ", "), strings.Join(lines, "\n"))
	}
	return lines
}

// runCU runs iscsi-test-cu once and returns its result lines and the names
// of the failed tests.
func runCU(t *testing.T, addr, iqn string, c *CHAP, tests string) (lines, failed []string) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("iscsi-test-cu", "-d", "-x", "-i", initiatorIQN, "-t", tests, url(addr, iqn, c))
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("iscsi-test-cu -t %.40s ran %s (exit: %v)", tests, time.Since(start).Round(time.Second), err)
	raw, rerr := os.ReadFile(filepath.Join(dir, "CUnitAutomated-Results.xml"))
	if rerr != nil {
		t.Fatalf("no CUnit report (%v); output:\n%s", rerr, out)
	}
	var run cunitRun
	if err := xml.Unmarshal(sanitizeXML(raw), &run); err != nil {
		t.Fatalf("CUnit report: %v", err)
	}
	seen := map[string]bool{}
	for _, s := range run.Suites {
		family := "SCSI."
		if strings.HasPrefix(strings.TrimSpace(s.Name), "iSCSI") {
			family = "iSCSI."
		}
		for _, r := range s.Records {
			switch {
			case r.Pass != nil:
				lines = append(lines, "PASS "+family+strings.TrimSpace(s.Name)+"."+strings.TrimSpace(r.Pass.Name))
			case r.Fail != nil:
				name := family + strings.TrimSpace(s.Name) + "." + strings.TrimSpace(r.Fail.Name)
				if !seen[name] {
					seen[name] = true
					failed = append(failed, name)
				}
				lines = append(lines, fmt.Sprintf("FAIL %s: %s:%s %s", name,
					strings.TrimSpace(r.Fail.File), strings.TrimSpace(r.Fail.Line), strings.TrimSpace(r.Fail.Condition)))
			}
		}
	}
	return dedupe(lines), failed
}

// dedupe keeps one line per test (a failing test has one record per
// failed assertion).
func dedupe(lines []string) []string {
	seen := map[string]bool{}
	var out []string
	name := regexp.MustCompile(`^(PASS|FAIL) ([^:]+)`)
	for _, l := range lines {
		k := name.FindString(l)
		if !seen[k] {
			seen[k] = true
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][5:] < out[j][5:] })
	return out
}

// sanitizeXML drops the DOCTYPE and stylesheet lines CUnit writes (they
// name files Go's decoder would not fetch anyway).
func sanitizeXML(b []byte) []byte {
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "<!DOCTYPE") || strings.HasPrefix(strings.TrimSpace(l), "<?xml-stylesheet") {
			continue
		}
		keep = append(keep, l)
	}
	return []byte(strings.Join(keep, "\n"))
}

var conformanceOnce sync.Once

// writeConformance appends a section to test-results/iscsi-conformance.txt.
func writeConformance(t *testing.T, backing string, lines []string) {
	t.Helper()
	dir := filepath.Join("..", "..", "test-results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pass := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "PASS") {
			pass++
		}
	}
	head := fmt.Sprintf("# iscsi-test-cu (libiscsi) against service/iscsi, backing store: %s, %s\n# tests: %s\n# %d of %d passed\n",
		backing, time.Now().UTC().Format(time.RFC3339), conformanceTests, pass, len(lines))
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	conformanceOnce.Do(func() { flags |= os.O_TRUNC }) // one file per test run
	f, err := os.OpenFile(filepath.Join(dir, "iscsi-conformance.txt"), flags, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(head + strings.Join(lines, "\n") + "\n\n"); err != nil {
		t.Fatal(err)
	}
}
