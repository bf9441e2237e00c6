package iscsi

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Logins across gateways: a login for a target this Target does not
// export is redirected to the portal of the one that does.

// Locator finds the portal that serves a target another Target exports.
type Locator interface {
	// Locate returns the portal address (host:port) that serves iqn, to
	// which a login for it that came in at local (the host:port the
	// initiator connected to: the portal chosen must be on its network)
	// is redirected ("target moved temporarily", RFC 7143 §6.2.1), or ""
	// when no one serves it (the login is refused as "not found", on
	// which initiators give up). An error means iqn is served but cannot
	// be reached now (its gateway is being taken over): the login is
	// refused as "service unavailable", on which initiators try again.
	Locate(ctx context.Context, iqn, local string) (string, error)
}

// redirect ends a login with "target moved temporarily" to address
// (host:port): the initiator logs in there, and comes back to the
// address it first used when it loses that session (RFC 7143 §6.2.1).
func redirect(address, format string, args ...any) *loginError {
	return &loginError{status: loginMovedTemp, msg: fmt.Sprintf(format, args...), address: address}
}

// locateTimeout bounds asking the Locator where a target is.
const locateTimeout = 3 * time.Second

// unavailablePause is how long a login for a target that cannot be
// reached now waits before its "service unavailable" answer.
const unavailablePause = 500 * time.Millisecond

// elsewhere answers a login for a target this Target does not export:
// with a redirect to the portal of the one that does (Config.Locator),
// "service unavailable" (retryable) when that one cannot be reached now,
// and "not found" (final) when no one exports it.
func (l *login) elsewhere(iqn string) *loginError {
	loc := l.t.cfg.Locator
	if loc == nil {
		return refuse(loginNotFound, "no target %s", iqn)
	}
	ctx := l.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, locateTimeout)
	defer cancel()
	addr, err := loc.Locate(ctx, iqn, l.local)
	var why string
	switch {
	case err != nil:
		why = err.Error()
	case addr == "":
		return refuse(loginNotFound, "no target %s", iqn)
	case sameAddr(addr, l.local):
		// The owner's address is held here (it moved to this gateway,
		// whose take-over of the owner has not exported the disk yet):
		// a redirect would loop.
		why = "its portal " + addr + " is held here but the disk is not exported here yet"
	default:
		l.redirected, l.redirectTo = true, addr
		return redirect(addr, "target %s is served at %s", iqn, addr)
	}
	// Initiators log in again at once (open-iscsi waits for nothing after
	// a target error): a pause keeps them from spinning while a take-over
	// runs.
	select {
	case <-ctx.Done():
	case <-time.After(unavailablePause):
	}
	return refuse(loginServiceUnavailable, "target %s: %s", iqn, why)
}

// sameAddr reports whether two host:port addresses are the same.
func sameAddr(a, b string) bool {
	pa, err1 := netip.ParseAddrPort(a)
	pb, err2 := netip.ParseAddrPort(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return pa.Addr().Unmap() == pb.Addr().Unmap() && pa.Port() == pb.Port()
}
