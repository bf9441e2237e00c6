package apiserver

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cdp"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/opjournal"
)

const evil = `<script>alert(1)</script>`

// evilUI accepts alice/pw and shows names that are markup.
type evilUI struct{}

func (evilUI) Authenticate(_ context.Context, who core.Principal) error {
	if who.User == "alice" && who.Password.Reveal() == "pw" {
		return nil
	}
	return fault.Errorf(fault.Unauthenticated, "wrong credentials")
}

func (u evilUI) Status(ctx context.Context, who core.Principal) (Status, error) {
	if err := u.Authenticate(ctx, who); err != nil {
		return Status{}, err
	}
	now := time.Now()
	op := core.Operation{ID: "1", Kind: "import", Project: evil, Target: evil, Principal: evil, State: opjournal.Failed, Error: evil, Created: now}
	return Status{User: who.User, Generated: now,
		Projects:   []ProjectStatus{{Name: evil, Images: []core.Image{{Name: evil, Kind: core.KindImage, State: core.State(evil)}}}},
		Nodes:      []NodeStatus{{Project: evil, Node: evil, NIC: evil, MAC: evil, Disk: evil, State: evil, Timeline: []BootStep{{Step: evil, At: now, Detail: evil}}}},
		Operations: []core.Operation{op}, Failures: []core.Operation{op}}, nil
}

func uiServer(t *testing.T) *httptest.Server {
	t.Helper()
	s, err := New(Config{Ops: noOps{}, Log: logging.Discard(), UI: evilUI{}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestUILogin: the form signs in with a safe cookie; a post from another
// site, wrong credentials and no session get no page; sign-out ends it.
func TestUILogin(t *testing.T) {
	ts := uiServer(t)
	if res, err := noRedirect.Get(ts.URL + "/ui/"); err != nil || res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/login" {
		t.Fatalf("no session: %v %v, want 303 to /ui/login", res.StatusCode, err)
	}
	post := func(form url.Values, origin string) *http.Response {
		req, _ := http.NewRequest("POST", ts.URL+"/ui/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	good := url.Values{"user": {"alice"}, "password": {"pw"}}
	for name, c := range map[string]struct {
		form   url.Values
		origin string
		want   int
	}{
		"wrong password":  {url.Values{"user": {"alice"}, "password": {"no"}}, "", http.StatusUnauthorized},
		"no user":         {url.Values{"password": {"pw"}}, "", http.StatusUnauthorized},
		"from other site": {good, "https://evil.example", http.StatusForbidden},
	} {
		if res := post(c.form, c.origin); res.StatusCode != c.want || len(res.Cookies()) != 0 {
			t.Errorf("%s: %d with %d cookies, want %d and none", name, res.StatusCode, len(res.Cookies()), c.want)
		}
	}
	res := post(good, ts.URL)
	if res.StatusCode != http.StatusSeeOther || len(res.Cookies()) != 1 {
		t.Fatalf("sign-in: %d %v", res.StatusCode, res.Cookies())
	}
	ck := res.Cookies()[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/ui/" || len(ck.Value) < 64 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path /ui/, a 256-bit token", ck)
	}
	get := func() (int, string, http.Header) {
		req, _ := http.NewRequest("GET", ts.URL+"/ui/", nil)
		req.AddCookie(ck)
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	code, body, h := get()
	if code != 200 || !strings.Contains(body, "Sign out") {
		t.Fatalf("page with the session: %d\n%s", code, body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("page headers: %v", h)
	}
	// Every name is text: not one tag of it reaches the page.
	if strings.Contains(body, "<script") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("a name is not escaped:\n%s", body)
	}
	req, _ := http.NewRequest("POST", ts.URL+"/ui/logout", nil)
	req.AddCookie(ck)
	if res, err := noRedirect.Do(req); err != nil || res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %v %v", res, err)
	}
	if code, _, _ := get(); code != http.StatusSeeOther {
		t.Fatalf("page after sign-out: %d, want 303", code)
	}
}

// TestUIEscapesInBrowser: in a real browser, a page whose every name is
// `<script>...` has no script element and shows the names as text.
func TestUIEscapesInBrowser(t *testing.T) {
	chromium := testenv.RequireCommand(t, "chromium", "chromium")
	ts := uiServer(t)
	b, err := cdp.Start(context.Background(), chromium)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Navigate(ts.URL + "/ui/login"); err != nil {
		t.Fatal(err)
	}
	if err := b.Eval(`document.getElementById("user").value = "alice";
		document.getElementById("password").value = "pw";
		document.getElementById("signin").click(); true`, nil); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Href    string
		Scripts int
		Node    string
		Text    string
		Ready   string
	}
	// The sign-in redirects to the page (the evaluation fails while the
	// browser navigates: tried again); read it once it has loaded whole.
	for end := time.Now().Add(time.Minute); time.Now().Before(end) && (got.Node == "" || got.Ready != "complete"); time.Sleep(100 * time.Millisecond) {
		_ = b.Eval(`({href: location.href, scripts: document.scripts.length, ready: document.readyState,
			node: (document.querySelector("tr.node") || {dataset: {}}).dataset.node || "",
			text: document.body ? document.body.innerText : ""})`, &got)
	}
	if got.Href != ts.URL+"/ui/" {
		t.Fatalf("after signing in the browser is at %s", got.Href)
	}
	if got.Scripts != 0 || got.Node != evil || strings.Count(got.Text, evil) < 5 {
		t.Fatalf("in the browser: %d script elements, node %q, the name shown %d times; want 0, %q, >= 5",
			got.Scripts, got.Node, strings.Count(got.Text, evil), evil)
	}
}
