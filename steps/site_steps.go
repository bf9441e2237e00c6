package steps

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cucumber/godog"
)

func registerSite(sc *godog.ScenarioContext) {
	sc.Step(`^bmid is ready$`, bmidReady)
	sc.Step(`^HIL accepts the administrator's credentials$`, func(ctx context.Context) error {
		w := From(ctx)
		return w.hil.Authenticate(ctx, hilCred(w.site.Admin))
	})
	sc.Step(`^every node the site names is my project's in HIL, with its NIC$`, nodesInHIL)
	sc.Step(`^the site's Ceph pool answers$`, func(ctx context.Context) error {
		_, err := rbdList(ctx, From(ctx).site)
		return err
	})
	sc.Step(`^the rbd client is Ceph (\d+) or newer$`, cephVersion)
	sc.Step(`^the iSCSI portal accepts connections$`, portalAnswers)
}

func bmidReady(ctx context.Context) error {
	w := From(ctx)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(w.site.APIURL, "/")+"/readyz", nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("bmid at %s: /readyz answers HTTP %d", w.site.APIURL, res.StatusCode)
	}
	return nil
}

func nodesInHIL(ctx context.Context) error {
	w := From(ctx)
	for _, n := range w.site.Nodes {
		hn, err := w.hil.ShowNode(ctx, hilCred(w.site.Operator), n.Name)
		if err != nil {
			return fmt.Errorf("hil: node %s: %w", n.Name, err)
		}
		if hn.Project != w.site.Project {
			return fmt.Errorf("hil: node %s belongs to %q, not %s", n.Name, hn.Project, w.site.Project)
		}
		if _, err := hn.NIC(n.NIC); err != nil {
			return err
		}
	}
	return nil
}

var cephVersionRE = regexp.MustCompile(`ceph version (\d+)\.`)

func cephVersion(ctx context.Context, min int) error {
	w := From(ctx)
	out, err := rbdRun(ctx, w.site, "--version")
	if err != nil {
		return fmt.Errorf("rbd --version: %w: %s", err, out)
	}
	m := cephVersionRE.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("rbd --version: no version in %q", out)
	}
	if v, _ := strconv.Atoi(m[1]); v < min {
		return fmt.Errorf("rbd is Ceph %d (%s), want %d or newer", v, strings.TrimSpace(out), min)
	}
	return nil
}

// portalAnswers logs in for a discovery without credentials: BMI's
// target answers with an authentication failure (it wants CHAP) or a
// list; a connection error means the portal is not there.
func portalAnswers(ctx context.Context) error {
	w := From(ctx)
	out, err := iscsiCommand(ctx, w.site, "iscsi-ls", "iscsi://"+w.site.Portal)
	if err == nil || strings.Contains(out, "Authentication failure") || strings.Contains(out, "Login failed") {
		return nil
	}
	return fmt.Errorf("iscsi portal %s: %w: %s", w.site.Portal, err, strings.TrimSpace(out))
}
