package iscsi

import (
	"bufio"
	"context"
	"crypto/rand"
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
	l := &login{t: t, remote: host, statSN: uint32(sn[0])<<8 | uint32(sn[1])}
	if err := c.SetDeadline(time.Now().Add(t.cfg.LoginTimeout)); err != nil {
		return err
	}
	var last *pdu
	for !l.done {
		req, err := readPDU(br, digests{}, loginMaxData)
		if err != nil {
			return fmt.Errorf("login from %s: %w", c.RemoteAddr(), err)
		}
		resp, lerr := l.respond(req)
		if l.done && lerr == nil {
			resp.put16(14, t.newTSIH())
		}
		l.statSN++
		b, err := resp.marshal(digests{})
		if err != nil {
			return err
		}
		if _, err := c.Write(b); err != nil {
			return err
		}
		if lerr != nil {
			var le *loginError
			if errors.As(lerr, &le) && (le.status == loginAuthFailed || le.status == loginForbidden) {
				t.log.Warn("iscsi login refused", "initiator", l.initiator, "remote", c.RemoteAddr().String(), "reason", le.msg)
			} else {
				t.log.Info("iscsi login refused", "initiator", l.initiator, "remote", c.RemoteAddr().String(), "reason", lerr.Error())
			}
			return lerr
		}
		last = req
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return err
	}
	s := &session{
		t: t, c: c, br: br, login: l, p: l.neg.p,
		dig:       digests{header: l.neg.p.headerDigest, data: l.neg.p.dataDigest},
		initiator: l.initiator, addr: c.RemoteAddr().String(), since: time.Now(),
		statSN: l.statSN, expCmdSN: last.u32(24),
	}
	s.maxAdv = s.expCmdSN - 1 + uint32(t.cfg.QueueDepth)
	if !l.discovery {
		// The target may have been unexported while the login ran.
		t.mu.Lock()
		e, ok := t.exports[l.exp.IQN]
		if !ok || e != l.exp {
			t.mu.Unlock()
			return fmt.Errorf("target %s was removed during the login of %s", l.exp.IQN, l.initiator)
		}
		s.exp = e
		s.nx = &nexus{}
		rand.Read(s.nx.itn.ID[:])
		s.nx.itn.Tag = fmt.Sprintf("%s,i,0x%x", l.initiator, l.isid)
		s.nx.luInfo.Lu = e.unit.lu
		e.sessions[s] = struct{}{}
		t.mu.Unlock()
		defer func() {
			t.mu.Lock()
			delete(e.sessions, s)
			t.mu.Unlock()
		}()
		t.log.Info("iscsi session started", "target", e.IQN, "initiator", l.initiator, "remote", s.addr,
			"header_digest", s.dig.header, "data_digest", s.dig.data)
	}
	err := s.serve(ctx)
	if !l.discovery {
		t.log.Info("iscsi session ended", "target", s.exp.IQN, "initiator", l.initiator, "remote", s.addr)
	}
	return err
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
