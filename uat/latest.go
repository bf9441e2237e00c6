package uat

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// RunDir is one result directory of a run or of one round of a
// randomised run.
type RunDir struct {
	Name    string // directory name under the results root
	Site    string
	Round   int    // 0: not a round of --randomize
	Verdict string // PASS, FAIL or RUNNING (killed or still running)
}

// LatestRun returns the result directories of the latest run under
// results: the newest directory alone, or, when it is a round of a
// randomised run, every round of that run (round 1 first).
func LatestRun(results string) ([]RunDir, error) {
	es, err := os.ReadDir(results)
	if err != nil {
		return nil, fmt.Errorf("no run results: %w", err)
	}
	var runs []RunDir
	for _, e := range es {
		m := runDir.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		r := RunDir{Name: e.Name(), Site: m[1], Verdict: m[3]}
		r.Round, _ = strconv.Atoi(m[2])
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("no run results in %s", results)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Name < runs[j].Name })
	last := runs[len(runs)-1]
	group := []RunDir{last}
	for i := len(runs) - 2; i >= 0 && group[0].Round > 1; i-- {
		r := runs[i]
		if r.Site != last.Site || r.Round != group[0].Round-1 {
			break
		}
		group = append([]RunDir{r}, group...)
	}
	return group, nil
}

// CheckLatest says whether the latest run (every round of it) passed: a
// summary line naming what failed, counting the scenarios by outcome and
// naming those skipped (a skipped scenario is never counted as passed),
// and whether it passed.
func CheckLatest(results string) (string, bool, error) {
	group, err := LatestRun(results)
	if err != nil {
		return "", false, err
	}
	counts := scenarioCounts(results, group)
	var bad []string
	for _, r := range group {
		switch r.Verdict {
		case "PASS":
		case "RUNNING":
			bad = append(bad, r.Name+" (did not finish)")
		default:
			bad = append(bad, r.Name)
		}
	}
	what := fmt.Sprintf("latest run %s (site %s)", group[len(group)-1].Name, group[0].Site)
	if group[0].Round > 0 || len(group) > 1 {
		what = fmt.Sprintf("latest randomised run of site %s, rounds %d-%d", group[0].Site, group[0].Round, group[len(group)-1].Round)
	}
	if len(bad) == 0 {
		return what + ": PASS" + counts, true, nil
	}
	return fmt.Sprintf("%s: FAIL: %d of %d failed: %s%s", what, len(bad), len(group), strings.Join(bad, ", "), counts), false, nil
}

// scenarioCounts sums the scenario outcomes of the runs' summary.json
// files: "; scenarios: 15 passed, 0 failed, 2 skipped (skipped: A, B)",
// or "" when no run has one (results of an older bmi-uat).
func scenarioCounts(results string, group []RunDir) string {
	var sum Summary
	var skipped []string
	found := false
	for _, r := range group {
		s, err := ReadSummary(filepath.Join(results, r.Name))
		if err != nil {
			continue
		}
		found = true
		sum.Passed, sum.Failed, sum.Skipped = sum.Passed+s.Passed, sum.Failed+s.Failed, sum.Skipped+s.Skipped
		for _, sc := range s.Scenarios {
			if sc.Status == statusSkipped && !slices.Contains(skipped, sc.Name) {
				skipped = append(skipped, sc.Name)
			}
		}
	}
	if !found {
		return ""
	}
	out := fmt.Sprintf("; scenarios: %d passed, %d failed, %d skipped", sum.Passed, sum.Failed, sum.Skipped)
	if len(skipped) > 0 {
		out += " (skipped: " + strings.Join(skipped, "; ") + ")"
	}
	return out
}
