package uat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckLatest(t *testing.T) {
	tests := map[string]struct {
		dirs   []string
		passed bool
		says   []string
	}{
		"single pass, older fail ignored": {
			dirs:   []string{"20260101T100000Z-lab-FAIL", "20260101T110000Z-lab-PASS"},
			passed: true, says: []string{"latest run 20260101T110000Z-lab-PASS (site lab): PASS"},
		},
		"single fail": {
			dirs: []string{"20260101T100000Z-lab-PASS", "20260101T110000Z-lab-FAIL"},
			says: []string{"FAIL: 1 of 1 failed: 20260101T110000Z-lab-FAIL"},
		},
		"one round of the latest randomised run failed": {
			dirs: []string{"20260101T090000Z-lab-round1-FAIL", "20260101T100000Z-lab-round1-PASS",
				"20260101T100100Z-lab-round2-FAIL", "20260101T100200Z-lab-round3-PASS", "notes.txt"},
			says: []string{"rounds 1-3: FAIL: 1 of 3 failed: 20260101T100100Z-lab-round2-FAIL"},
		},
		"every round passed; an older run's round fails": {
			dirs: []string{"20260101T090000Z-lab-round2-FAIL", "20260101T100000Z-lab-round1-PASS",
				"20260101T100100Z-lab-round2-PASS"},
			passed: true, says: []string{"latest randomised run of site lab, rounds 1-2: PASS"},
		},
		"killed run": {
			dirs: []string{"20260101T100000Z-lab-PASS", "20260101T110000Z-lab-RUNNING"},
			says: []string{"20260101T110000Z-lab-RUNNING (did not finish)"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range tc.dirs {
				p := filepath.Join(root, d)
				var err error
				if strings.HasSuffix(d, ".txt") {
					err = os.WriteFile(p, nil, 0o644)
				} else {
					err = os.Mkdir(p, 0o755)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			line, passed, err := CheckLatest(root)
			if err != nil {
				t.Fatal(err)
			}
			if passed != tc.passed {
				t.Errorf("passed = %v, want %v (%s)", passed, tc.passed, line)
			}
			for _, s := range tc.says {
				if !strings.Contains(line, s) {
					t.Errorf("summary %q lacks %q", line, s)
				}
			}
		})
	}
	if _, _, err := CheckLatest(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no run results") {
		t.Errorf("empty results: %v", err)
	}
	if _, _, err := CheckLatest(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing results directory: no error")
	}
}
