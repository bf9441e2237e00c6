package uat

import (
	"fmt"
	"os"
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
// summary line naming what failed, and whether it passed.
func CheckLatest(results string) (string, bool, error) {
	group, err := LatestRun(results)
	if err != nil {
		return "", false, err
	}
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
		return what + ": PASS", true, nil
	}
	return fmt.Sprintf("%s: FAIL: %d of %d failed: %s", what, len(bad), len(group), strings.Join(bad, ", ")), false, nil
}
