//go:build ceph_preview

package steps_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cucumber/godog"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/steps"
	"github.com/bmi-go/bmi/uat"
)

var errForced = errors.New("forced failure")

// noResidue asserts the site holds nothing of the suite's: no BMI image,
// snapshot, disk, target or boot config in the site's projects, no uat-*
// image in the Ceph pool, and HIL's nodes still the project's, on no
// network.
func noResidue(t *testing.T, site *steps.Site) {
	t.Helper()
	ctx := context.Background()
	admin, err := site.Client(site.Admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{site.Project, site.OtherProject} {
		ims, err := admin.DBImages(ctx, client.DBFilter{Project: p})
		if err != nil || len(ims) != 0 {
			t.Errorf("BMI project %s still has %v (%v)", p, names(ims), err)
		}
		ts, err := admin.Targets(ctx, p)
		if err != nil || len(ts) != 0 {
			t.Errorf("BMI project %s still has targets %+v (%v)", p, ts, err)
		}
		bs, err := admin.Boots(ctx, p)
		if err != nil || len(bs) != 0 {
			t.Errorf("BMI project %s still has boot configs %+v (%v)", p, bs, err)
		}
	}
	pool, err := steps.RBDList(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range pool {
		if strings.HasPrefix(n, steps.Prefix) {
			t.Errorf("Ceph pool %s still has %s", site.Pool, n)
		}
	}
	if left, err := cephtest.Leftovers(site.CephConf, site.Pool, ""); err == nil && left != "" {
		t.Logf("pool: %s", left)
	}
	for _, n := range site.Nodes {
		hn, err := site.HIL().ShowNode(ctx, hilCred(site), n.Name)
		if err != nil {
			t.Errorf("HIL node %s: %v", n.Name, err)
			continue
		}
		nic, err := hn.NIC(n.NIC)
		if err != nil || hn.Project != site.Project || len(nic.Networks) != 0 {
			t.Errorf("HIL node %s: project %s, nic %+v (%v)", n.Name, hn.Project, nic, err)
		}
	}
}

func names(ims []api.Image) []string {
	var out []string
	for _, im := range ims {
		out = append(out, im.Kind+" "+im.Name)
	}
	return out
}

// TestForcedFailureLeavesNothing fails a scenario after it provisioned a
// node, snapshotted its disk, cloned the snapshot into a second disk and
// pointed another node at it; the rollback must leave nothing behind.
func TestForcedFailureLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local site")
	}
	site := localSite(t)
	res, err := uat.Run(context.Background(), uat.RunOptions{
		Site: site, Results: t.TempDir(), FS: os.DirFS("testdata"), Features: []string{"forced-failure.feature"},
		Steps: func(sc *godog.ScenarioContext) {
			sc.Step(`^the run fails here on purpose$`, func() error { return errForced })
			sc.Step(`^nothing else runs$`, func() error { t.Error("a step after the failure ran"); return nil })
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed || !strings.HasSuffix(res.Dir, "-FAIL") {
		t.Fatalf("a forced failure passed: %+v", res)
	}
	log, err := os.ReadFile(filepath.Join(res.Dir, "pretty.log"))
	if err != nil {
		t.Fatal(err)
	}
	// the scenario reached the forced failure: every resource was created
	if !strings.Contains(string(log), "forced failure") || !strings.Contains(string(log), "7 passed") {
		t.Errorf("the scenario did not fail where forced:\n%s", log)
	}
	left, err := steps.ReadJournal(filepath.Join(res.Dir, "journal.jsonl"))
	if err != nil || len(left) != 0 {
		t.Errorf("journal entries not undone: %+v (%v)", left, err)
	}
	noResidue(t, site)
}

// TestCleanReplaysAKilledRun writes the journal a killed run leaves (the
// resources exist, nothing was undone) and checks that uat.Clean removes
// everything, then finds nothing more to do.
func TestCleanReplaysAKilledRun(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local site")
	}
	site := localSite(t)
	ctx := context.Background()
	results := t.TempDir()
	dir := filepath.Join(results, "20260101T000000Z-local-RUNNING")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	j, err := steps.OpenJournal(filepath.Join(dir, "journal.jsonl"), "killed")
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := site.Client(site.Admin)
	op, _ := site.Client(site.Operator)
	add := func(e steps.Entry) {
		if _, err := j.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	add(steps.Entry{Op: steps.OpRBDImage, Name: "uat-killed-base"})
	if out, err := cephtest.RBD(site.CephConf, site.Pool, "create", "--size", "8M", "uat-killed-base"); err != nil {
		t.Fatalf("rbd create: %v %s", err, out)
	}
	add(steps.Entry{Op: steps.OpImage, Project: site.Project, Name: "uat-killed-golden"})
	if _, _, err := admin.Import(ctx, site.Project, api.ImportRequest{Source: "uat-killed-base", Name: "uat-killed-golden"}, false); err != nil {
		t.Fatal(err)
	}
	add(steps.Entry{Op: steps.OpProvision, Project: site.Project, Name: site.Nodes[0].Name})
	if _, _, err := op.Provision(ctx, site.Project, site.Nodes[0].Name, api.ProvisionRequest{Image: "uat-killed-golden", NIC: site.Nodes[0].NIC}, false); err != nil {
		t.Fatal(err)
	}
	// not journaled (killed between the create and its journal line would
	// be the reverse order; this is the sweep's job): a stray uat-* image
	if _, _, err := op.Upload(ctx, site.Project, "uat-stray", strings.NewReader(strings.Repeat("x", 1<<20)), 1<<20); err != nil {
		t.Fatal(err)
	}
	j.Close()
	var log strings.Builder
	if err := uat.Clean(ctx, site, results, &log); err != nil {
		t.Fatalf("Clean: %v\n%s", err, log.String())
	}
	t.Log(log.String())
	if !strings.Contains(log.String(), "replaying 3 entries") || !strings.Contains(log.String(), "image tenant-a/uat-stray") {
		t.Errorf("Clean did not replay the journal and sweep the stray image:\n%s", log.String())
	}
	noResidue(t, site)
	log.Reset()
	if err := uat.Clean(ctx, site, results, &log); err != nil || strings.Contains(log.String(), "removed") || strings.Contains(log.String(), "replaying") {
		t.Errorf("a second Clean found work: %v\n%s", err, log.String())
	}
}
