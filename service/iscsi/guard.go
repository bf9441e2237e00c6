package iscsi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"slices"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
)

// LoginGuard watches logins: it may refuse an attempt before any
// credential is checked (a throttled source or name) and hears the outcome
// of every attempt (for throttling and the audit log).
type LoginGuard interface {
	// Allow reports whether a login from remote (an address without port)
	// as initiator may go on.
	Allow(remote, initiator string) bool
	// Done reports the outcome of a login attempt.
	Done(ev LoginEvent)
}

// LoginObserver hears the outcome of every login attempt, after the
// guard (the node boot timeline is one).
type LoginObserver interface {
	ObserveLogin(ev LoginEvent)
}

// LoginEvent is the outcome of one login attempt.
type LoginEvent struct {
	// Remote is the initiator's address (no port).
	Remote string
	// Initiator is the initiator's IQN ("" when it sent none).
	Initiator string
	// ISID is the initiator's session identifier, 12 hex digits: the
	// same initiator logs in with another one from another program
	// (iPXE, then the booted OS).
	ISID string
	// Target is the target's IQN ("" for discovery).
	Target string
	// User is the CHAP user name the initiator gave, if any.
	User string
	// Discovery says it was a discovery session.
	Discovery bool
	// OK says the login succeeded.
	OK bool
	// AuthFailed says it failed on credentials or the ACL (not, e.g., a
	// protocol error): what throttling counts.
	AuthFailed bool
	// Reason is why it failed.
	Reason string
	// RedirectedTo is the portal a login for a target another gateway
	// exports was redirected to (Config.Locator); not a failure of the
	// initiator's.
	RedirectedTo string
}

// loginThrottled is the status of a throttled login (target error,
// "service unavailable": try again later).
const loginThrottled = 0x0301

// SetInitiators replaces the initiator ACL of the exported target iqn: from
// now on only these initiator names may discover it or log in to it (an
// empty list lets none). Sessions already logged in are kept.
func (t *Target) SetInitiators(_ context.Context, iqn string, initiators []string) error {
	list := slices.Clone(initiators)
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.exports[iqn]
	if !ok {
		return fault.Errorf(fault.NotFound, "iscsi: no target %s", iqn)
	}
	e.acl.Store(&list)
	return nil
}

// Initiators returns the initiator ACL of the exported target iqn, and
// false when none is set (any initiator name may log in).
func (t *Target) Initiators(iqn string) ([]string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.exports[iqn]
	if !ok {
		return nil, false
	}
	if p := e.acl.Load(); p != nil {
		return slices.Clone(*p), true
	}
	return slices.Clone(e.Initiators), len(e.Initiators) > 0
}

var unsafeIQN = regexp.MustCompile(`[^a-z0-9.-]`)

// NodeInitiator is the initiator name BMI gives a node in its boot script
// and puts in the ACL of the disks it boots:
// "<prefix>:<uid>.node.<node>", lower-cased; a node name with characters
// an IQN cannot hold gets them replaced and a hash of the name appended,
// so that two nodes never share a name.
func NodeInitiator(prefix, uid, node string) string {
	n := strings.ToLower(node)
	if safe := unsafeIQN.ReplaceAllString(n, "-"); safe != node || len(safe) > 64 {
		sum := sha256.Sum256([]byte(node))
		if len(safe) > 64 {
			safe = safe[:64]
		}
		n = safe + "-" + hex.EncodeToString(sum[:4])
	}
	return strings.ToLower(prefix + ":" + uid + ".node." + n)
}

// SetCHAP replaces the CHAP credentials of the exported target iqn for
// logins from now on; sessions already logged in are kept.
func (t *Target) SetCHAP(_ context.Context, iqn string, c CHAP) error {
	if c.User == "" || len(c.Secret) < minCHAPSecret || len(c.Secret) > 255 {
		return fault.Errorf(fault.Invalid, "target %s: CHAP needs a user and a secret of %d to 255 bytes", iqn, minCHAPSecret)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.exports[iqn]
	if !ok {
		return fault.Errorf(fault.NotFound, "iscsi: no target %s", iqn)
	}
	e.CHAP = &c
	return nil
}

// chapOf returns e's CHAP credentials (nil: none), read under t.mu since
// SetCHAP may replace them.
func (t *Target) chapOf(e *export) *CHAP {
	t.mu.Lock()
	defer t.mu.Unlock()
	return e.CHAP
}
