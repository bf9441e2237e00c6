package uat

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/steps"
)

// Check validates a loaded site and that everything the suite talks to
// answers, without changing anything: bmid's readiness, the credentials,
// the projects, the nodes and NICs in HIL, the Ceph pool through rbd, the
// iSCSI portal, and the local commands. It prints one line per check and
// returns an error naming how many failed.
func Check(ctx context.Context, site *steps.Site, out io.Writer) error {
	failed := 0
	report := func(what string, err error) {
		if err != nil {
			failed++
			fmt.Fprintf(out, "FAIL  %s: %v\n", what, err)
			return
		}
		fmt.Fprintf(out, "ok    %s\n", what)
	}
	for _, c := range []string{"rbd", "iscsi-ls", "iscsi-readcapacity16"} {
		_, err := exec.LookPath(c)
		report("command "+c, err)
	}
	report("bmid ready at "+site.APIURL, ready(ctx, site.APIURL+"/readyz"))
	admin, err := site.Client(site.Admin)
	if err != nil {
		return err
	}
	projects, err := admin.Projects(ctx)
	report(fmt.Sprintf("BMI administrator %s", site.Admin.User), err)
	for _, p := range []string{site.Project, site.OtherProject} {
		if p == "" || err != nil {
			continue
		}
		found := slices.ContainsFunc(projects, func(q api.Project) bool { return q.Name == p })
		report("BMI project "+p, boolErr(found, "not registered in BMI"))
	}
	opc, err := site.Client(site.Operator)
	if err == nil {
		_, err = opc.Images(ctx, site.Project)
	}
	report(fmt.Sprintf("operator %s lists project %s", site.Operator.User, site.Project), err)
	if site.TwoTenants() {
		oc, err := site.Client(site.Other)
		if err == nil {
			_, err = oc.Images(ctx, site.OtherProject)
		}
		report(fmt.Sprintf("other tenant %s lists project %s", site.Other.User, site.OtherProject), err)
	}
	hc := site.HIL()
	report("HIL at "+site.HILURL+" as "+site.Admin.User, hc.Authenticate(ctx, hil.Credentials{User: site.Admin.User, Password: site.Admin.Password}))
	for _, n := range site.Nodes {
		hn, err := hc.ShowNode(ctx, hil.Credentials{User: site.Operator.User, Password: site.Operator.Password}, n.Name)
		if err == nil && hn.Project != site.Project {
			err = fmt.Errorf("belongs to project %q, not %s", hn.Project, site.Project)
		}
		if err == nil {
			_, err = hn.NIC(n.NIC)
		}
		report(fmt.Sprintf("HIL node %s nic %s", n.Name, n.NIC), err)
	}
	_, err = steps.RBDList(ctx, site)
	report(fmt.Sprintf("Ceph pool %s (%s)", site.Pool, site.CephConf), err)
	if site.NetNS == "" {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", site.Portal)
		if err == nil {
			c.Close()
		}
		report("iSCSI portal "+site.Portal, err)
	} else {
		_, err := exec.CommandContext(ctx, "ip", "netns", "exec", site.NetNS, "true").CombinedOutput()
		report("network namespace "+site.NetNS, err)
	}
	if feats, err := Features(); err == nil {
		for _, p := range Plan(site, feats) {
			if !p.Runs() {
				fmt.Fprintf(out, "skip  scenario %q (%s): %s\n", p.Scenario.Name, p.Feature.File, p.Why(site.Name))
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("site %s: %d check(s) failed", site.Name, failed)
	}
	return nil
}

func boolErr(ok bool, msg string) error {
	if ok {
		return nil
	}
	return fmt.Errorf("%s", msg)
}

func ready(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b := make([]byte, 512)
		n, _ := res.Body.Read(b)
		return fmt.Errorf("HTTP %d: %s", res.StatusCode, strings.TrimSpace(string(b[:n])))
	}
	return nil
}
