package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/clikit"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	root := newRoot(func(string) string { return "" })
	var out, errb bytes.Buffer
	root.SetOut(&out)
	code := clikit.Run(context.Background(), root, args, &errb)
	return code, out.String(), errb.String()
}

func TestCheckLatestRun(t *testing.T) {
	tests := map[string]struct {
		dirs []string
		code int
		says string
	}{
		"latest passed":  {[]string{"20260101T100000Z-lab-FAIL", "20260101T110000Z-lab-PASS"}, 0, "latest run 20260101T110000Z-lab-PASS (site lab): PASS"},
		"latest failed":  {[]string{"20260101T100000Z-lab-PASS", "20260101T110000Z-lab-FAIL"}, 1, "20260101T110000Z-lab-FAIL"},
		"a round failed": {[]string{"20260101T100000Z-lab-round1-PASS", "20260101T100100Z-lab-round2-FAIL", "20260101T100200Z-lab-round3-PASS"}, 1, "rounds 1-3: FAIL: 1 of 3 failed: 20260101T100100Z-lab-round2-FAIL"},
		"no results":     {nil, 1, "no run results"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := t.TempDir()
			for _, d := range tc.dirs {
				if err := os.Mkdir(filepath.Join(res, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			code, out, errs := run(t, "--results", res, "check")
			if code != tc.code || !strings.Contains(out+errs, tc.says) {
				t.Errorf("check = %d, %q %q; want %d and %q", code, out, errs, tc.code, tc.says)
			}
		})
	}
}

func TestCheckUsage(t *testing.T) {
	code, _, errs := run(t, "check", "lab")
	if code != clikit.ExitUsage || !strings.Contains(errs, "check --site lab") {
		t.Errorf("check lab = %d, %q; want usage pointing at --site", code, errs)
	}
	code, _, errs = run(t, "--configs", t.TempDir(), "check", "--site", "nowhere")
	if code != clikit.ExitFailure || !strings.Contains(errs, "nowhere") {
		t.Errorf("check --site nowhere = %d, %q; want failure naming the site", code, errs)
	}
}

func TestReportCommand(t *testing.T) {
	src := filepath.Join("..", "..", "uat", "testdata", "report", "20260101T120000Z-fixture-round2-FAIL")
	dir := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cucumber.json", "journal.jsonl", "pretty.log"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errs := run(t, "report", dir)
	if code != 0 {
		t.Fatalf("report = %d: %s", code, errs)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil || !strings.Contains(out, "report.html") || !strings.Contains(string(b), "seed</th><td>424242") {
		t.Errorf("report wrote %q (%v), printed %q", b, err, out)
	}
	if code, _, _ := run(t, "report", t.TempDir()); code != clikit.ExitFailure {
		t.Errorf("report of a non-run directory = %d, want 1", code)
	}
}

// TestLsSite lists what would run on the shipped sites, offline and
// without their passwords.
func TestLsSite(t *testing.T) {
	code, out, errs := run(t, "--configs", filepath.Join("..", "..", "configs"), "ls", "--site", "lab")
	if code != 0 {
		t.Fatalf("ls --site lab = %d: %s", code, errs)
	}
	for _, re := range []string{
		`(?m)^  capability\s+boots\s+yes\s`,
		`(?m)^  capability\s+hil-stop\s+yes\s`,
		`(?m)^  capability\s+foothold\s+yes\s`,
		`(?m)^  capability\s+ceph-stop\s+yes\s`,
		`(?m)^  run\s+Nodes boot their disks`,
		`(?m)^  run\s+HIL is down`,
		`(?m)^  run\s+Ceph is down`,
		`(?m)^  run\s+A stranger on the provisioning network`,
		`(?m)^  run\s+Another tenant's project`,
		`(?m)^\d+ of \d+ scenarios would run on site lab$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("ls --site lab lacks %s:\n%s", re, out)
		}
	}
	// the lab lacks no capability: nothing is skipped there
	if m := regexp.MustCompile(`(?m)^  skip .*$`).FindString(out); m != "" {
		t.Errorf("ls --site lab skips a scenario: %s", m)
	}
	code, out, _ = run(t, "--configs", filepath.Join("..", "..", "configs"), "ls", "--site", "example")
	if code != 0 || !regexp.MustCompile(`(?m)^  skip\s+Nodes boot their disks.*needs boots`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^  run\s+Another tenant's project`).MatchString(out) {
		t.Errorf("ls --site example = %d:\n%s", code, out)
	}
}
