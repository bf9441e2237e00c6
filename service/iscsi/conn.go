package iscsi

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"
)

// serveConn runs one TCP connection: the login phase, then the session.
func (t *Target) serveConn(ctx context.Context, c net.Conn) error {
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	br := bufio.NewReaderSize(c, 256*1024)
	var sn [4]byte
	rand.Read(sn[:])
	l := &login{t: t, ctx: ctx, remote: host, local: c.LocalAddr().String(), statSN: uint32(sn[0])<<8 | uint32(sn[1])}
	if err := c.SetDeadline(time.Now().Add(t.cfg.LoginTimeout)); err != nil {
		return err
	}
	s := &session{t: t, c: c, br: br, login: l, addr: c.RemoteAddr().String(), done: make(chan struct{})}
	t.mu.Lock()
	if _, ok := t.conns[c]; ok {
		t.conns[c] = s
	}
	t.mu.Unlock()
	// Unexport waits for done: close it on every way out, also when the
	// session is closed between its registration and serve.
	defer close(s.done)
	var last *pdu
	for !l.done {
		req, err := readPDU(br, digests{}, loginMaxData)
		if err != nil {
			return fmt.Errorf("login from %s: %w", c.RemoteAddr(), err)
		}
		resp, lerr := l.respond(req)
		if l.done && lerr == nil && !l.discovery {
			// Register before the initiator hears it is logged in; the
			// target may have been unexported while the login ran.
			var olds []*session
			t.mu.Lock()
			if e, ok := t.exports[l.exp.IQN]; ok && e == l.exp {
				s.exp = e
				s.initiator, s.since, s.isid = l.initiator, time.Now(), l.isid
				// Session reinstatement (RFC 7143 §6.3.5): the same
				// initiator and ISID replace their old session, e.g. a node
				// that rebooted without logging out, or whose iscsid
				// recovers the session on a new connection.
				for old := range e.sessions {
					if old.initiator == s.initiator && old.isid == s.isid {
						t.log.Info("iscsi session reinstated", "target", e.IQN, "initiator", s.initiator, "old_remote", old.addr)
						old.close()
						olds = append(olds, old)
					}
				}
				e.sessions[s] = struct{}{}
			} else {
				lerr = refuse(loginTargetRemoved, "target %s was removed during the login", l.exp.IQN)
				resp.bhs[1] &^= 0x83
				resp.bhs[36], resp.bhs[37] = byte(loginTargetRemoved>>8), byte(loginTargetRemoved&0xff)
				resp.data = nil
			}
			t.mu.Unlock()
			if s.exp != nil {
				defer func() {
					t.mu.Lock()
					delete(s.exp.sessions, s)
					t.mu.Unlock()
				}()
			}
			// The old session's commands are terminated before the new
			// session may send any: a write of the old session still
			// executing must never land after a newer one of the new
			// session. Past the bound the login is refused as "service
			// unavailable" and the initiator tries again.
			if err := waitEnded(olds, t.cfg.LoginTimeout); err != nil {
				lerr = refuse(loginServiceUnavailable, "%v", err)
				resp.bhs[1] &^= 0x83
				resp.bhs[36], resp.bhs[37] = byte(loginServiceUnavailable>>8), byte(loginServiceUnavailable&0xff)
				resp.data = nil
			}
		}
		if l.done && lerr == nil {
			resp.put16(14, t.newTSIH())
			resp.put32(32, req.u32(24)+uint32(t.cfg.QueueDepth)-1) // open the command window
		}
		l.statSN++
		var le *loginError
		authFailed := lerr != nil && errors.As(lerr, &le) && (le.status == loginAuthFailed || le.status == loginForbidden)
		if lerr != nil {
			// Counted before the initiator hears of it, so that its next
			// attempt already sees the failure.
			t.loginDone(l, false, authFailed, lerr.Error())
		}
		b, err := resp.marshal(digests{})
		if err != nil {
			return err
		}
		if _, err := c.Write(b); err != nil {
			return err
		}
		if lerr != nil {
			if le != nil && le.address != "" {
				t.log.Info("iscsi login redirected", "initiator", l.initiator, "remote", c.RemoteAddr().String(), "to", le.address, "reason", le.msg)
				return lerr
			}
			if authFailed {
				t.log.Warn("iscsi login refused", "initiator", l.initiator, "remote", c.RemoteAddr().String(), "reason", le.msg)
			} else {
				t.log.Info("iscsi login refused", "initiator", l.initiator, "remote", c.RemoteAddr().String(), "reason", lerr.Error())
			}
			return lerr
		}
		last = req
	}
	t.loginDone(l, true, false, "")
	if err := c.SetDeadline(time.Time{}); err != nil {
		return err
	}
	s.p = l.neg.p
	s.dig = digests{header: l.neg.p.headerDigest, data: l.neg.p.dataDigest}
	if l.discovery {
		s.initiator, s.since = l.initiator, time.Now()
	}
	s.statSN, s.expCmdSN = l.statSN, last.u32(24)
	s.maxAdv = s.expCmdSN - 1 + uint32(t.cfg.QueueDepth)
	if !l.discovery {
		e := s.exp
		s.nx = &nexus{}
		rand.Read(s.nx.itn.ID[:])
		s.nx.itn.Tag = fmt.Sprintf("%s,i,0x%x", l.initiator, l.isid)
		s.nx.luInfo.Lu = e.unit.lu
		t.log.Info("iscsi session started", "target", e.IQN, "initiator", l.initiator, "remote", s.addr,
			"header_digest", s.dig.header, "data_digest", s.dig.data)
	}
	err := s.serve(ctx)
	if !l.discovery && ctx.Err() == nil {
		s.exp.unit.nexusLost(s.nx) // [scsi] hook: SPC-2 reservations end with their I_T nexus, not at a stop
	}
	if !l.discovery {
		t.log.Info("iscsi session ended", "target", s.exp.IQN, "initiator", l.initiator, "remote", s.addr)
	}
	return err
}

// waitEnded waits until every session of olds has ended, at most d.
func waitEnded(olds []*session, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for _, o := range olds {
		select {
		case <-o.done:
		case <-timer.C:
			return fmt.Errorf("the session it reinstates (%s) has not ended after %v", o.addr, d)
		}
	}
	return nil
}

// loginDone tells the guard and the observer how a login ended.
func (t *Target) loginDone(l *login, ok, authFailed bool, reason string) {
	if o := t.cfg.Observer; o != nil {
		result := "refused"
		switch {
		case ok:
			result = "ok"
		case authFailed:
			result = "auth_failed"
		case l.redirected:
			result = "redirected"
		}
		o.Login(l.discovery, result)
	}
	if t.cfg.Guard == nil && t.cfg.Logins == nil {
		return
	}
	ev := LoginEvent{Remote: l.remote, Initiator: l.initiator, ISID: hex.EncodeToString(l.isid[:]), User: l.chapUser,
		Discovery: l.discovery, OK: ok, AuthFailed: authFailed, Reason: reason}
	if l.exp != nil {
		ev.Target = l.exp.IQN
	}
	if l.redirected {
		ev.RedirectedTo = l.redirectTo
	}
	if t.cfg.Guard != nil {
		t.cfg.Guard.Done(ev)
	}
	if t.cfg.Logins != nil {
		t.cfg.Logins.ObserveLogin(ev)
	}
}

// newTSIH returns a non-zero session handle.
func (t *Target) newTSIH() uint16 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tsih++
	if t.tsih == 0 {
		t.tsih = 1
	}
	return t.tsih
}
