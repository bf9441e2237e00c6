package steps

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/cucumber/godog"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/logging"
)

// The @attacker steps: from the site's foothold (a machine on the
// provisioning network that is no node), try what an attacker would to
// get a node's boot script, its disk's secret and its disk, and check
// that each attempt fails and is in bmid's audit log.

// attackLog is what the foothold tried in a scenario.
type attackLog struct {
	since time.Time // the first attempt (audit entries before it are not ours)
	// wrongAPIUser is the user name of the by-name attempt through the API.
	wrongAPIUser string
}

func registerAttacker(sc *godog.ScenarioContext) {
	sc.Step(`^the foothold gets no boot script of (node [AB]) by its MAC without its lease$`, attackByMAC)
	sc.Step(`^the foothold gets no boot script of (node [AB]) by its name$`, attackByName)
	sc.Step(`^the foothold cannot log in to (node [AB])'s disk with its initiator name and no secret$`, attackNoSecret)
	sc.Step(`^after (\d+) wrong CHAP secrets for (node [AB])'s disk the foothold is throttled$`, attackThrottled)
	sc.Step(`^the audit log records the foothold's attempts on (node [AB])$`, attackAudited)
}

// foothold runs a program on the site's foothold, bounded in time.
func (w *World) foothold(ctx context.Context, name string, args ...string) (string, error) {
	fh := w.site.Foothold
	if fh == nil {
		return "", godog.ErrSkip
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	argv := append(append(append([]string{}, fh.Command...), name), args...)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}

// fhCurl fetches a URL from the foothold: the HTTP status ("000" when
// nothing answered) and the body.
func (w *World) fhCurl(ctx context.Context, url string) (string, string, error) {
	out, err := w.foothold(ctx, "curl", "-s", "-m", "10", "-w", "\n%{http_code}", url)
	i := strings.LastIndex(out, "\n")
	if i < 0 {
		if err != nil {
			return "", "", fmt.Errorf("curl %s on the foothold: %w: %s", url, err, out)
		}
		return "", out, nil
	}
	return strings.TrimSpace(out[i+1:]), out[:i], nil
}

// victim returns node's name, boot MAC, its disk's credentials (read as
// the administrator) and the node's initiator name (from its ACL).
func (w *World) victim(ctx context.Context, alias string) (Node, string, api.Credentials, string, error) {
	n, err := w.node(alias)
	if err != nil {
		return n, "", api.Credentials{}, "", err
	}
	mac, err := w.mac(ctx, n)
	if err != nil {
		return n, "", api.Credentials{}, "", err
	}
	bc, err := w.op.Boot(ctx, w.site.Project, n.Name)
	if err != nil {
		return n, "", api.Credentials{}, "", fmt.Errorf("boot config of %s: %w", n.Name, err)
	}
	cr, err := w.admin.Credentials(ctx, w.site.Project, bc.Disk)
	if err != nil {
		return n, "", api.Credentials{}, "", fmt.Errorf("credentials of disk %s: %w", bc.Disk, err)
	}
	acl, err := w.admin.ACL(ctx, w.site.Project, bc.Disk)
	if err != nil {
		return n, "", api.Credentials{}, "", fmt.Errorf("ACL of disk %s: %w", bc.Disk, err)
	}
	if len(acl.Nodes) == 0 {
		return n, "", api.Credentials{}, "", fmt.Errorf("ACL of disk %s names no node", bc.Disk)
	}
	if w.attack.since.IsZero() {
		w.attack.since = time.Now().Add(-2 * time.Second)
	}
	return n, mac, cr, acl.Nodes[0], nil
}

// noSecret fails when a reply carries the secret or a sanboot line.
func noSecret(what, code, body, secret string) error {
	if secret != "" && strings.Contains(body, secret) || strings.Contains(body, "sanboot") {
		return fmt.Errorf("%s: HTTP %s with the node's script:\n%s", what, code, body)
	}
	if code == "200" && !strings.Contains(body, "BMI-NO-BOOT-CONFIG") {
		return fmt.Errorf("%s: HTTP 200 %q, want a refusal or the no-boot-config script", what, body)
	}
	return nil
}

func attackByMAC(ctx context.Context, alias string) error {
	w := From(ctx)
	_, mac, cr, _, err := w.victim(ctx, alias)
	if err != nil {
		return err
	}
	base := strings.TrimRight(w.site.Foothold.BootURL, "/") + "/boot/"
	dashed := strings.ReplaceAll(mac, ":", "-")
	for _, path := range []string{dashed + ".ipxe", dashed + ".ipxe?token=" + strings.Repeat("0", 32), mac + ".ipxe"} {
		code, body, err := w.fhCurl(ctx, base+path)
		if err != nil {
			return err
		}
		if code == "" || code == "000" {
			return fmt.Errorf("the boot listener %s does not answer the foothold: check foothold.boot_url", w.site.Foothold.BootURL)
		}
		if err := noSecret("GET "+base+path+" from the foothold", code, body, cr.CHAPSecret); err != nil {
			return err
		}
	}
	return nil
}

func attackByName(ctx context.Context, alias string) error {
	w := From(ctx)
	n, _, cr, _, err := w.victim(ctx, alias)
	if err != nil {
		return err
	}
	// The boot listener has no route by name.
	base := strings.TrimRight(w.site.Foothold.BootURL, "/")
	for _, path := range []string{"/boot/node/" + n.Name + ".ipxe", "/api/v1/projects/" + w.site.Project + "/nodes/" + n.Name + "/boot.ipxe"} {
		code, body, err := w.fhCurl(ctx, base+path)
		if err != nil {
			return err
		}
		if err := noSecret("GET "+base+path+" from the foothold", code, body, cr.CHAPSecret); err != nil {
			return err
		}
	}
	// The API's route by name, from the foothold if it reaches the API
	// (it should not), with a guessed password: refused, and never the secret.
	api := strings.TrimRight(w.site.APIURL, "/") + "/api/v1/projects/" + w.site.Project + "/nodes/" + n.Name + "/boot.ipxe"
	if code, body, err := w.fhCurl(ctx, api); err == nil && code != "" && code != "000" {
		if err := noSecret("GET "+api+" from the foothold", code, body, cr.CHAPSecret); err != nil {
			return err
		}
	}
	// The same with a stolen user name and a guessed password, where the
	// API answers (the audit log must show it).
	w.attack.wrongAPIUser = w.site.Operator.User
	guess, err := w.site.Client(Credentials{User: w.site.Operator.User, Password: logging.Secret("guessed-" + w.name("pw"))})
	if err != nil {
		return err
	}
	text, err := guess.BootScript(ctx, w.site.Project, n.Name)
	if err == nil || strings.Contains(text, cr.CHAPSecret) {
		return fmt.Errorf("the API served node %s's script to a wrong password (err %v)", n.Name, err)
	}
	return nil
}

// fhISCSI runs a libiscsi tool on the foothold against the victim's
// target; it fails when the login is accepted.
func (w *World) fhLogin(ctx context.Context, initiator, user, secret, iqn string) (string, error) {
	cred := ""
	if user != "" {
		cred = user + "%" + secret + "@"
	}
	out, err := w.foothold(ctx, "iscsi-inq", "-i", initiator, fmt.Sprintf("iscsi://%s%s/%s/0", cred, w.site.Foothold.Portal, iqn))
	var ee *exec.ExitError
	if err == nil {
		return out, fmt.Errorf("iscsi-inq as %s from the foothold logged in:\n%s", initiator, out)
	}
	if !errors.As(err, &ee) {
		return out, fmt.Errorf("iscsi-inq on the foothold: %w: %s", err, out)
	}
	return out, nil
}

func attackNoSecret(ctx context.Context, alias string) error {
	w := From(ctx)
	_, _, cr, initiator, err := w.victim(ctx, alias)
	if err != nil {
		return err
	}
	if _, err := w.fhLogin(ctx, initiator, "", "", cr.IQN); err != nil {
		return fmt.Errorf("no CHAP: %w", err)
	}
	if _, err := w.fhLogin(ctx, initiator, cr.CHAPUser, "", cr.IQN); err != nil {
		return fmt.Errorf("CHAP user without its secret: %w", err)
	}
	return nil
}

func attackThrottled(ctx context.Context, n int, alias string) error {
	w := From(ctx)
	_, _, cr, _, err := w.victim(ctx, alias)
	if err != nil {
		return err
	}
	// An attacker's own initiator name: the node's name is left alone, so
	// that the node itself is never throttled by this scenario.
	attacker := "iqn.2026-11.org.attacker:" + w.name("box")
	for i := 0; i < n; i++ {
		if _, err := w.fhLogin(ctx, attacker, cr.CHAPUser, fmt.Sprintf("guess-%02d-%s", i, w.name("x")), cr.IQN); err != nil {
			return fmt.Errorf("wrong secret %d: %w", i, err)
		}
	}
	// The right secret now: refused too (throttled, or the ACL).
	if _, err := w.fhLogin(ctx, attacker, cr.CHAPUser, cr.CHAPSecret, cr.IQN); err != nil {
		return fmt.Errorf("after %d wrong secrets: %w", n, err)
	}
	es, err := w.auditSince(ctx, "iscsi", w.site.Foothold.Address)
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.Outcome == "throttled" {
			return nil
		}
	}
	return fmt.Errorf("after %d wrong CHAP secrets from %s the audit log shows no throttled login: %s", n, w.site.Foothold.Address, auditLines(es))
}

// auditSince reads the audit log (as the administrator): kind's entries
// since the scenario's first attempt, from source when not "".
func (w *World) auditSince(ctx context.Context, kind, source string) ([]api.AuditEntry, error) {
	es, err := w.admin.Audit(ctx, api.AuditQuery{Kind: kind, Source: source, Limit: 1000})
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	var out []api.AuditEntry
	for _, e := range es {
		if !e.At.Before(w.attack.since) {
			out = append(out, e)
		}
	}
	return out, nil
}

func auditLines(es []api.AuditEntry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\n  %s %s %s from %s: %s %s %s", e.At.Format(time.RFC3339), e.Kind, e.Actor, e.Source, e.Action, e.Outcome, e.Detail)
	}
	return b.String()
}

func attackAudited(ctx context.Context, alias string) error {
	w := From(ctx)
	n, mac, _, initiator, err := w.victim(ctx, alias)
	if err != nil {
		return err
	}
	// The scripts asked by MAC: refused (kind boot) for the node's MAC —
	// from the foothold's address, or on the network the foothold is on
	// when that is not the node's project's.
	boots, err := w.auditSince(ctx, "boot", "")
	if err != nil {
		return err
	}
	var scripts int
	for _, e := range boots {
		if e.Actor == mac && e.Outcome == "refused" && (e.Source == w.site.Foothold.Address || strings.HasPrefix(e.Source, "network ")) {
			scripts++
		}
	}
	if scripts == 0 {
		return fmt.Errorf("the audit log has no refused boot script for %s (%s):%s", n.Name, mac, auditLines(boots))
	}
	// The API by name with a guessed password.
	apis, err := w.auditSince(ctx, "api", "")
	if err != nil {
		return err
	}
	var byName int
	for _, e := range apis {
		if e.Actor == w.attack.wrongAPIUser && e.Outcome == "401" && strings.Contains(e.Object, n.Name) {
			byName++
		}
	}
	if byName == 0 {
		return fmt.Errorf("the audit log has no refused API call for %s's script by name:%s", n.Name, auditLines(apis))
	}
	// The logins: the node's own name without a secret, refused.
	logins, err := w.auditSince(ctx, "iscsi", w.site.Foothold.Address)
	if err != nil {
		return err
	}
	var stolen, throttled int
	for _, e := range logins {
		switch {
		case e.Actor == initiator && e.Outcome != "ok":
			stolen++
		case e.Outcome == "throttled":
			throttled++
		case e.Outcome == "ok":
			return fmt.Errorf("the audit log shows a login from the foothold that succeeded: %s", auditLines([]api.AuditEntry{e}))
		}
	}
	if stolen < 2 || throttled == 0 {
		return fmt.Errorf("the audit log shows %d refused logins as %s and %d throttled ones from the foothold %s, want >= 2 and >= 1:%s",
			stolen, initiator, throttled, w.site.Foothold.Address, auditLines(logins))
	}
	return nil
}
