//go:build ceph_preview

package daemon

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cdp"
	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/hil"
)

// nodeRow is what the browser shows of one node's row.
type nodeRow struct {
	Href    string
	Found   bool
	State   string
	Images  []string
	Scripts int
	Error   string
}

// TestStatusPageInBrowser: in headless Chromium, alice signs in through
// the form of a real bmid (real Ceph); node-01 has no row; she provisions
// it through the API and its row appears, waiting for boot; once the node
// fetches its boot script the row shows that step. bob, signed in, sees
// nothing of tenant-a. With BMI_UI_SCREENSHOT=path the page is saved there
// (the README's screenshot).
func TestStatusPageInBrowser(t *testing.T) {
	chromium := testenv.RequireCommand(t, "chromium", "chromium")
	ctx := context.Background()
	s := &site{t: t, cfg: siteConfig(t, newUID(t), startHIL(t), t.TempDir())}
	s.conf, s.pool = s.cfg.Ceph.Conf, s.cfg.Ceph.Pool
	golden := s.cfg.UID + "-golden"
	rbd(t, s.conf, s.pool, "create", "--size", "64M", golden)
	t.Cleanup(func() { cephtest.RBD(s.conf, s.pool, "rm", golden) })
	s.start()
	defer s.stop()
	svc := s.d.Service()
	for _, p := range []string{"tenant-a", "tenant-b"} {
		if _, err := svc.CreateProject(ctx, admin, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.ImportImage(ctx, admin, "tenant-a", golden, core.ImportOptions{Name: "debian-12"}); err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.cfg.API.Listen
	signIn := func(user, pw string) *cdp.Browser {
		b, err := cdp.Start(ctx, chromium)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		if err := b.Navigate(base + "/ui/"); err != nil { // redirected to the form
			t.Fatal(err)
		}
		var st struct{ Href, Text string }
		for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			_ = b.Eval(`({href: location.href, text: document.body ? document.body.innerText : ""})`, &st)
			if st.Href == base+"/ui/" {
				return b
			}
			// On the form (again): fill it in and submit.
			_ = b.Eval(`(() => { const u = document.getElementById("user"); if (!u || document.readyState !== "complete") return false;
				u.value = "`+user+`"; document.getElementById("password").value = "`+pw+`";
				document.getElementById("signin").click(); return true; })()`, nil)
		}
		t.Fatalf("%s could not sign in: at %s showing\n%s", user, st.Href, st.Text)
		return b
	}
	// row reloads the page until cond holds for node-01's row (a minute at most).
	row := func(b *cdp.Browser, what string, cond func(nodeRow) bool) nodeRow {
		t.Helper()
		var r nodeRow
		for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
			_ = b.Eval(`(() => { const r = document.querySelector('tr.node[data-node="node-01"]');
				return {href: location.href, found: !!r, state: r ? r.dataset.state : "", scripts: document.scripts.length,
					images: [...document.querySelectorAll("div.image")].map(e => e.textContent),
					error: (document.getElementById("login-error") || {}).textContent || ""}; })()`, &r)
			if r.Href == base+"/ui/" && cond(r) {
				return r
			}
			_ = b.Navigate(base + "/ui/")
		}
		t.Fatalf("%s: not within a minute; last %+v", what, r)
		return r
	}
	ba := signIn("alice", "alice-secret")
	r := row(ba, "alice's page", func(r nodeRow) bool { return len(r.Images) > 0 })
	if r.Found || r.Scripts != 0 {
		t.Fatalf("before provisioning: %+v, want no node-01 row and no script", r)
	}
	c, err := client.New(base, alice.User, alice.Password)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Provision(ctx, "tenant-a", "node-01", api.ProvisionRequest{Image: "debian-12", NIC: "eth0"}, false); err != nil {
		t.Fatal(err)
	}
	row(ba, "node-01's row after provisioning", func(r nodeRow) bool { return r.Found && r.State == "waiting for boot" })
	if err := hil.New(s.cfg.HIL.URL, nil).PowerOn(ctx, hil.Credentials{User: alice.User, Password: alice.Password}, "node-01"); err != nil {
		t.Fatal(err)
	}
	if code, _ := s.get("/boot/52:54:00:00:01:01.ipxe"); code != 200 {
		t.Fatalf("boot script: %d", code)
	}
	row(ba, "node-01's row after its script", func(r nodeRow) bool { return r.State == "ipxe-script-served" })
	if p := os.Getenv("BMI_UI_SCREENSHOT"); p != "" {
		if err := ba.Screenshot(p); err != nil {
			t.Fatal(err)
		}
	}
	// bob (tenant-b) sees neither node-01 nor tenant-a's image.
	bb := signIn("bob", "bob-secret")
	if r := row(bb, "bob's page", func(nodeRow) bool { return true }); r.Found || len(r.Images) != 0 {
		t.Fatalf("bob's page shows tenant-a: %+v", r)
	}
	if err := svc.Deprovision(ctx, alice, "tenant-a", "node-01", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := svc.RemoveImage(ctx, admin, "tenant-a", "debian-12"); err != nil {
		t.Fatal(err)
	}
}
