package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/clikit"
	"github.com/bmi-go/bmi/steps"
	"github.com/bmi-go/bmi/uat"
)

// errLocal explains why the built-in local site is not run by this binary.
var errLocal = errors.New("site local (bmid in-process on a private Ceph cluster) runs under go test, not bmi-uat: " +
	"go test -tags pacific,ceph_preview ./steps (bmi-uat is built without cgo and cannot embed bmid)")

type env struct {
	getenv  func(string) string
	configs []string
	results string
}

// configDirs is where site configs are looked up: --configs, else
// ./configs, else configs next to the binary's directory, else /etc/bmi.
func configDirs(flag string) []string {
	if flag != "" {
		return []string{flag}
	}
	dirs := []string{"configs"}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "..", "configs"))
	}
	return append(dirs, "/etc/bmi")
}

func (e *env) site(name string) (*steps.Site, error) {
	if name == "local" {
		return nil, errLocal
	}
	p, err := uat.SitePath(name, e.configs)
	if err != nil {
		return nil, err
	}
	return uat.LoadSite(p, e.getenv)
}

func newRoot(getenv func(string) string) *cobra.Command {
	e := &env{getenv: getenv}
	var configsFlag string
	root := &cobra.Command{
		Use:   "bmi-uat",
		Short: "BMI acceptance suite runner: run the Gherkin features against a site",
		Long: "bmi-uat runs BMI's acceptance suite (the features embedded in this binary) against a site\n" +
			"described by configs/uat-<site>.yaml, and keeps each run's results in\n" +
			"test-results/uat/<timestamp>-<site>-<PASS|FAIL>/. The built-in site 'local' runs under go test.",
		PersistentPreRun: func(*cobra.Command, []string) { e.configs = configDirs(configsFlag) },
	}
	root.PersistentFlags().StringVar(&configsFlag, "configs", "", "directory of uat-<site>.yaml files (default ./configs, then ../configs next to the binary, then /etc/bmi)")
	root.PersistentFlags().StringVar(&e.results, "results", filepath.Join("test-results", "uat"), "directory of the run results")
	root.AddCommand(lsCmd(e), runCmd(e), checkCmd(e), cleanCmd(e), reportCmd())
	return clikit.Prepare(root)
}

func lsCmd(e *env) *cobra.Command {
	var siteName string
	c := &cobra.Command{
		Use:   "ls [--site SITE]",
		Short: "List the site configs, and the features, scenarios and tags this binary runs; --site: which would run there and why the rest would not",
		Args:  clikit.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fs, err := uat.Features()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			if siteName != "" {
				return lsSite(e, siteName, fs, w)
			}
			fmt.Fprintf(w, "sites:\tlocal (go test ./steps) %s\n", strings.Join(uat.Sites(e.configs), " "))
			for _, f := range fs {
				fmt.Fprintf(w, "\n%s\t%s\t%s\n", f.File, f.Name, strings.Join(f.Tags, " "))
				for _, s := range f.Scenarios {
					fmt.Fprintf(w, "  scenario\t%s\t%s\n", s.Name, strings.Join(s.Tags, " "))
				}
			}
			return w.Flush()
		},
	}
	c.Flags().StringVar(&siteName, "site", "", "show which scenarios would run on this site, and why the others would not")
	return c
}

// lsSite lists the site's capabilities and, per scenario, whether a run
// there would run it. It contacts nothing, so a password variable that is
// not set does not stop it.
func lsSite(e *env, name string, fs []uat.Feature, w *tabwriter.Writer) error {
	if name == "local" {
		return errLocal
	}
	p, err := uat.SitePath(name, e.configs)
	if err != nil {
		return err
	}
	site, err := uat.LoadSite(p, func(k string) string {
		if v := e.getenv(k); v != "" {
			return v
		}
		// a stand-in of the right form (nothing is contacted): an
		// address from TEST-NET-1, a URL under .invalid
		switch {
		case strings.HasSuffix(k, "_ADDR"):
			return "192.0.2.1"
		case strings.HasSuffix(k, "_PORTAL"):
			return "192.0.2.1:3260"
		case strings.HasSuffix(k, "_URL"):
			return "http://unset.invalid"
		}
		return "unset-" + k
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "site %s (%s)\n", site.Name, p)
	for _, c := range steps.Capabilities {
		has := "no"
		if site.Can(c.Cap) {
			has = "yes"
		}
		fmt.Fprintf(w, "  capability\t%s\t%s\t%s\n", c.Cap, has, c.Means)
	}
	runs := 0
	plan := uat.Plan(site, fs)
	for i, pl := range plan {
		if i == 0 || plan[i-1].Feature.File != pl.Feature.File {
			fmt.Fprintf(w, "\n%s\t%s\n", pl.Feature.File, pl.Feature.Name)
		}
		if pl.Runs() {
			runs++
			fmt.Fprintf(w, "  run\t%s\n", pl.Scenario.Name)
		} else {
			fmt.Fprintf(w, "  skip\t%s\t%s\n", pl.Scenario.Name, pl.Why(site.Name))
		}
	}
	fmt.Fprintf(w, "\n%d of %d scenarios would run on site %s\n", runs, len(plan), site.Name)
	return w.Flush()
}

func runCmd(e *env) *cobra.Command {
	var (
		rounds   int
		seed     uint64
		tags     string
		features []string
	)
	c := &cobra.Command{
		Use:   "run SITE",
		Short: "Run the suite against a site; exit 1 when anything failed",
		Args:  clikit.ExactArgs("SITE"),
		RunE: func(c *cobra.Command, args []string) error {
			site, err := e.site(args[0])
			if err != nil {
				return err
			}
			if rounds < 0 {
				return clikit.Usagef("--randomize takes a number of rounds >= 1")
			}
			if rounds > 0 && seed == 0 {
				var b [8]byte
				_, _ = rand.Read(b[:])
				seed = binary.LittleEndian.Uint64(b[:]) | 1
			}
			n := max(rounds, 1)
			var failed []string
			for i := 1; i <= n; i++ {
				o := uat.RunOptions{Site: site, Tags: tags, Features: features, Results: e.results, Output: c.OutOrStdout()}
				if rounds > 0 {
					o.Round, o.Seed = i, seed+uint64(i-1)
				}
				res, err := uat.Run(c.Context(), o)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "bmi-uat: report in %s\n", filepath.Join(res.Dir, "report.html"))
				if !res.Passed {
					failed = append(failed, res.Dir)
				}
				if c.Context().Err() != nil {
					return fmt.Errorf("interrupted after round %d", i)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d run(s) failed: %s", len(failed), n, strings.Join(failed, ", "))
			}
			return nil
		},
	}
	c.Flags().IntVar(&rounds, "randomize", 0, "run N rounds with random names of 10-15 characters (the seed is printed)")
	c.Flags().Uint64Var(&seed, "seed", 0, "the first round's seed (replays a randomised round)")
	c.Flags().StringVar(&tags, "tags", "", "godog tag expression, e.g. '@images && ~@slow'")
	c.Flags().StringArrayVar(&features, "feature", nil, "run only this feature file (repeatable), e.g. images.feature")
	return c
}

func checkCmd(e *env) *cobra.Command {
	var siteName string
	c := &cobra.Command{
		Use:   "check [--site SITE]",
		Short: "Exit 1 if the latest run (or any round of the latest randomised run) failed; --site validates a site instead",
		Long: "check reads the results directory: the latest run, or every round of the latest --randomize run,\n" +
			"and prints one summary line saying which failed (exit 1) or that all passed (exit 0).\n" +
			"check --site SITE instead validates the site config and that everything the suite talks to answers;\n" +
			"it changes nothing.",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return clikit.Usagef("check takes no SITE argument: use check --site %s to validate a site", args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if siteName != "" {
				site, err := e.site(siteName)
				if err != nil {
					return err
				}
				return uat.Check(c.Context(), site, c.OutOrStdout())
			}
			line, passed, err := uat.CheckLatest(e.results)
			if err != nil {
				return err
			}
			if !passed {
				return errors.New(line)
			}
			fmt.Fprintln(c.OutOrStdout(), line)
			return nil
		},
	}
	c.Flags().StringVar(&siteName, "site", "", "validate this site (config, credentials, services answering) instead of checking the results")
	return c
}

func reportCmd() *cobra.Command {
	var trend string
	c := &cobra.Command{
		Use:   "report DIR [DIR...]",
		Short: "(Re)render DIR/report.html from a run result directory; with several, also a run-over-run trend page",
		Long: "report re-renders each run directory's report.html. Given several run directories (a nightly\n" +
			"job's), it also writes a trend page: per scenario its outcome and duration in every run and its\n" +
			"pass rate (default: trend.html next to the runs).",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return clikit.Usagef("report takes one run directory or more")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			for _, dir := range args {
				info, err := uat.ReportInfoFor(dir)
				if err != nil {
					return err
				}
				if err := uat.WriteReport(dir, info); err != nil {
					return err
				}
				fmt.Fprintln(c.OutOrStdout(), filepath.Join(dir, "report.html"))
			}
			if len(args) < 2 {
				return nil
			}
			out := trend
			if out == "" {
				out = filepath.Join(filepath.Dir(filepath.Clean(args[0])), "trend.html")
			}
			if err := uat.WriteTrend(out, args); err != nil {
				return err
			}
			fmt.Fprintln(c.OutOrStdout(), out)
			return nil
		},
	}
	c.Flags().StringVar(&trend, "trend", "", "where to write the trend page of several runs (default trend.html next to the first run)")
	return c
}

func cleanCmd(e *env) *cobra.Command {
	var results, yes bool
	c := &cobra.Command{
		Use:   "clean SITE",
		Short: "Roll back what killed runs left, remove everything named by the suite's scheme (uat-*)",
		Args:  clikit.ExactArgs("SITE"),
		RunE: func(c *cobra.Command, args []string) error {
			site, err := e.site(args[0])
			if err != nil {
				return err
			}
			if err := uat.Clean(c.Context(), site, e.results, c.OutOrStdout()); err != nil {
				return err
			}
			if !results {
				return nil
			}
			if !yes {
				fmt.Fprintf(c.OutOrStdout(), "remove every run result in %s? [y/N] ", e.results)
				line, _ := bufio.NewReader(c.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(strings.ToLower(line)) != "y" {
					fmt.Fprintln(c.OutOrStdout(), "results kept")
					return nil
				}
			}
			n, err := uat.RemoveResults(e.results)
			if err == nil {
				fmt.Fprintf(c.OutOrStdout(), "removed %d run result(s)\n", n)
			}
			return err
		},
	}
	c.Flags().BoolVar(&results, "remove-results", false, "also delete the run results (asks first)")
	c.Flags().BoolVar(&yes, "yes", false, "do not ask before deleting results")
	return c
}
