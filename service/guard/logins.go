package guard

import (
	"context"
	"strings"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/iscsi"
)

// Logins is the iSCSI target's login guard: a source address with too
// many failed logins (CHAP or ACL refusals), or a failing source trying an
// initiator name with too many, is refused before its credentials are
// checked (Limiter.Refuse); every login, whatever its outcome, goes to the
// audit log.
type Logins struct {
	// Fails counts failed logins per "ip:<addr>" and "iqn:<name>".
	Fails *Limiter
	// Record receives one audit entry per login; nil records nothing.
	Record func(ctx context.Context, e api.AuditEntry)
}

var _ iscsi.LoginGuard = (*Logins)(nil)

// Allow implements iscsi.LoginGuard.
func (g *Logins) Allow(remote, initiator string) bool {
	return !g.Fails.Refuse("ip:"+remote, "iqn:"+initiator)
}

// Done implements iscsi.LoginGuard.
func (g *Logins) Done(ev iscsi.LoginEvent) {
	outcome := "ok"
	switch {
	case ev.OK:
	case ev.RedirectedTo != "":
		outcome = "redirected"
	case strings.Contains(ev.Reason, "throttled"):
		outcome = "throttled"
	default:
		outcome = "refused"
	}
	if ev.AuthFailed {
		g.Fails.Fail("ip:" + ev.Remote)
		g.Fails.Fail("iqn:" + ev.Initiator)
	}
	if g.Record == nil {
		return
	}
	action := "login"
	if ev.Discovery {
		action = "discovery"
	}
	detail := ev.Reason
	if ev.User != "" {
		detail = strings.TrimSpace("chap_user=" + ev.User + " " + detail)
	}
	g.Record(context.Background(), api.AuditEntry{Kind: "iscsi", Actor: ev.Initiator, Source: ev.Remote,
		Action: action, Object: ev.Target, Outcome: outcome, Detail: detail})
}
