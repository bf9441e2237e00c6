package iscsi

import (
	"strings"
)

// Task management functions and responses (RFC 7143 §11.5, §11.6).
const (
	tmfAbortTask    = 1
	tmfAbortTaskSet = 2
	tmfClearACA     = 3
	tmfClearTaskSet = 4
	tmfLUNReset     = 5
	tmfTargetWarm   = 6
	tmfTargetCold   = 7
	tmfTaskReassign = 8
	tmfComplete     = 0
	tmfNoTask       = 1
	tmfNoLUN        = 2
	tmfNoReassign   = 4
	tmfNotSupported = 5
)

// taskManagement answers a TMF request. Aborted commands get no response;
// the TMF response is sent once they are out of the engine.
func (s *session) taskManagement(p *pdu) {
	fn := p.flags() & 0x7f
	r := newPDU(opTMFResp)
	r.put32(16, p.itt())
	respond := func(code byte, wait []*task) {
		r.bhs[2] = code
		if len(wait) == 0 {
			s.send(outPDU{p: r, status: true})
			return
		}
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			for _, t := range wait {
				<-t.done
			}
			s.send(outPDU{p: r, status: true})
		}()
	}
	if s.exp == nil {
		respond(tmfNotSupported, nil)
		return
	}
	switch fn {
	case tmfAbortTask:
		rtt := p.u32(20)
		s.mu.Lock()
		t := s.tasks[rtt]
		if t != nil {
			t.aborted = true
		}
		s.mu.Unlock()
		if t == nil {
			respond(s.abortMissing(p.u32(32), p.u32(24)), nil)
			return
		}
		s.abortCollecting([]*task{t})
		s.observeAbort(fn, 1)
		respond(tmfComplete, []*task{t})
	case tmfAbortTaskSet, tmfClearTaskSet, tmfLUNReset:
		if decodeLUN(p.lun()) != 0 {
			respond(tmfNoLUN, nil)
			return
		}
		s.mu.Lock()
		var ts []*task
		for _, t := range s.tasks {
			t.aborted = true
			ts = append(ts, t)
		}
		s.mu.Unlock()
		s.abortCollecting(ts)
		s.observeAbort(fn, len(ts))
		if fn == tmfLUNReset {
			s.exp.unit.lunReset()
		}
		respond(tmfComplete, ts)
	case tmfTaskReassign:
		respond(tmfNoReassign, nil)
	default: // CLEAR ACA, target resets
		respond(tmfNotSupported, nil)
	}
}

// abortMissing answers an ABORT TASK whose Referenced Task Tag names no
// task of the session, as RFC 7143 §11.6.1 requires: if RefCmdSN is inside
// the valid CmdSN window [ExpCmdSN, MaxCmdSN] and before the request's own
// CmdSN, the command has not been received yet (or waits behind a gap):
// its CmdSN counts as received, the command is discarded if it arrives,
// and the answer is "Function complete" (b). Otherwise, notably for a
// command already executed and answered (its CmdSN is below ExpCmdSN),
// the answer is "Task does not exist" (c).
func (s *session) abortMissing(ref, cmdSN uint32) byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	inWindow := !snaGT(s.expCmdSN, ref) && !snaGT(ref, s.maxAdv)
	if !inWindow || !snaGT(cmdSN, ref) {
		return tmfNoTask
	}
	// The command's CmdSN counts as received: if it is the next one
	// expected, the window moves past it; if a gap precedes it, a NOP-Out
	// that needs no answer takes its place in the CmdSN order. Either way
	// the command itself, if it comes, is a duplicate and dropped. (On our
	// single TCP connection a command the initiator sent before this
	// request can only be missing if it broke the window; commands it sent
	// after a missing one wait for that one, as admit orders them.)
	if ref == s.expCmdSN && len(s.held) == 0 {
		s.expCmdSN++
	} else {
		nop := newPDU(opNOPOut)
		nop.put32(16, reservedTag)
		nop.put32(20, reservedTag)
		nop.put32(24, ref)
		s.held[ref] = nop
	}
	return tmfComplete
}

// abortCollecting finishes aborted tasks that are still waiting for data
// (they never reached a worker).
func (s *session) abortCollecting(ts []*task) {
	for _, t := range ts {
		if !t.started {
			t.started = true
			s.finish(t, nil)
		}
	}
}

// waitTasks waits until every current task has completed.
func (s *session) waitTasks(except *task) {
	s.startReady() // the read loop calls this: hand over what it holds first
	s.mu.Lock()
	var ts []*task
	for _, t := range s.tasks {
		if t != except {
			ts = append(ts, t)
		}
	}
	s.mu.Unlock()
	for _, t := range ts {
		if !t.started {
			t.started = true
			s.mu.Lock()
			t.aborted = true
			s.mu.Unlock()
			s.finish(t, nil)
			continue
		}
		<-t.done
	}
}

// text answers a Text Request: SendTargets, continued answers, and
// NotUnderstood for anything else.
func (s *session) text(p *pdu) {
	r := newPDU(opTextResp)
	copy(r.bhs[8:16], p.bhs[8:16])
	r.put32(16, p.itt())
	r.put32(20, reservedTag)
	if p.flags()&0x40 != 0 { // C: the request continues
		s.textBuf = append(s.textBuf, p.data...)
		if len(s.textBuf) > maxTextLen {
			s.textBuf = nil
			s.reject(p, rejectProtocolError)
			return
		}
		r.bhs[1] = 0
		r.put32(20, s.newTTTLocked())
		s.send(outPDU{p: r, status: true})
		return
	}
	var answer []byte
	if ttt := p.u32(20); ttt != reservedTag && ttt == s.textTTT && len(s.textOut) > 0 {
		answer = s.textOut // the initiator asks for the rest of a long answer
	} else {
		text := append(s.textBuf, p.data...)
		s.textBuf = nil
		kvs, err := parseText(text)
		if err != nil {
			s.reject(p, rejectProtocolError)
			return
		}
		var out []keyValue
		for _, kv := range kvs {
			if kv.Key == "SendTargets" {
				out = append(out, s.sendTargets(kv.Value)...)
				continue
			}
			if a, reply, ok := (&negotiator{p: s.p, declared: true}).operational(kv); ok {
				_ = a
				if reply {
					out = append(out, keyValue{kv.Key, "Reject"}) // no renegotiation in full feature
				}
				continue
			}
			out = append(out, keyValue{kv.Key, "NotUnderstood"})
		}
		answer = marshalText(out)
	}
	s.textOut = nil
	if len(answer) > s.p.initiatorMaxRecv {
		r.bhs[1] = 0x40 // C: more follows
		s.textOut = answer[s.p.initiatorMaxRecv:]
		answer = answer[:s.p.initiatorMaxRecv]
		s.textTTT = s.newTTTLocked()
		r.put32(20, s.textTTT)
	}
	r.data = answer
	s.send(outPDU{p: r, status: true})
}

func (s *session) newTTTLocked() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newTTT()
}

// sendTargets lists the targets this initiator may log in to.
func (s *session) sendTargets(v string) []keyValue {
	portal := s.t.cfg.Portal
	if portal == "" {
		portal = s.c.LocalAddr().String()
	}
	var names []string
	switch {
	case v == "All" && s.exp == nil:
		names = s.t.visible(s.login)
	case v == "All" || v == "":
		if s.exp != nil {
			names = []string{s.exp.IQN}
		}
	default:
		for _, n := range s.t.visible(s.login) {
			if n == v {
				names = []string{n}
			}
		}
		if s.exp != nil && v == s.exp.IQN {
			names = []string{v}
		}
	}
	var out []keyValue
	for _, n := range names {
		at := portal
		if p, ok := s.login.others.portals[n]; ok {
			at = p // exported by another gateway: its portal
		}
		out = append(out, keyValue{"TargetName", n}, keyValue{"TargetAddress", strings.TrimSpace(at) + ",1"})
	}
	return out
}

// observeAbort reports an aborting task management function.
func (s *session) observeAbort(fn byte, n int) {
	o := s.t.cfg.Observer
	if o == nil {
		return
	}
	name := map[byte]string{tmfAbortTask: "abort_task", tmfAbortTaskSet: "abort_task_set",
		tmfClearTaskSet: "clear_task_set", tmfLUNReset: "lun_reset"}[fn]
	o.Abort(name, n)
}
