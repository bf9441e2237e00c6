package iscsi

import (
	"encoding/binary"
	"fmt"
	"time"
)

// task is one SCSI command of a session.
type task struct {
	itt       uint32
	cmdSN     uint32
	lunRaw    [8]byte
	req       scsiRequest
	buf       []byte      // Data-Out buffer
	release   func()      // recycles buf and gives back its budget (nil: nothing to do)
	fail      *scsiResult // answer without executing (set before start)
	received  int
	nextR2T   int // offset of the next R2T to issue
	r2tOut    int // outstanding R2Ts
	r2tSN     uint32
	unsol     bool // unsolicited Data-Out still expected
	dataSN    uint32
	started   bool
	aborted   bool
	immediate bool
	dataErr   bool // a Data-Out arrived out of sequence
	done      chan struct{}
	arrived   time.Time // for the latency the Observer hears
}

// scsiCommand starts a SCSI Command: it collects immediate data, asks for
// the rest with R2Ts, and hands the command to the workers.
func (s *session) scsiCommand(p *pdu) error {
	if s.draining.Load() {
		// The target is stopping: the command is not started and not
		// answered; the initiator sends it again after its new login.
		s.releaseSlot(p)
		return nil
	}
	if s.exp == nil {
		s.reject(p, rejectProtocolError) // no SCSI in a discovery session
		s.releaseSlot(p)
		return nil
	}
	flags := p.flags()
	read, write := flags&0x40 != 0, flags&0x20 != 0
	edtl := p.u32(20)
	cdb := append([]byte(nil), p.bhs[32:48]...)
	if len(p.ahs) >= 4 && p.ahs[2] == 1 { // extended CDB AHS
		l := int(binary.BigEndian.Uint16(p.ahs[0:])) - 1
		if l > 0 && 4+l <= len(p.ahs) {
			cdb = append(cdb, p.ahs[4:4+l]...)
		}
	}
	t := &task{itt: p.itt(), cmdSN: p.u32(24), lunRaw: p.lun(), immediate: p.immediate(), done: make(chan struct{})}
	if s.t.cfg.Observer != nil {
		t.arrived = time.Now()
	}
	t.req = scsiRequest{cdb: cdb, lun: decodeLUN(t.lunRaw), edtl: edtl, read: read, write: write, nexus: s.nx}
	imm := len(p.data)
	bad := imm > 0 && (!write || !s.p.immediateData || imm > int(edtl) || imm > s.p.firstBurst)
	final := flags&0x80 != 0
	if bad || (!write && !final) || (write && !final && s.p.initialR2T) {
		s.reject(p, rejectProtocolError)
		s.releaseSlot(p)
		return nil
	}
	s.mu.Lock()
	if _, dup := s.tasks[t.itt]; dup || len(s.tasks) >= 2*s.t.cfg.QueueDepth {
		s.mu.Unlock()
		s.reject(p, rejectInvalidField)
		s.releaseSlot(p)
		return nil
	}
	s.tasks[t.itt] = t
	s.mu.Unlock()
	if !write || edtl == 0 {
		s.start(t)
		return nil
	}
	if edtl > maxTransfer {
		// Refuse before allocating; any unsolicited Data-Out that follows
		// is rejected, as for a finished task.
		res := checkCondition(senseIllegalRequest, ascInvalidFieldInCDB)
		t.fail = &res
		s.start(t)
		return nil
	}
	if s.writeBuf.Add(int64(edtl)) > maxSessionWriteBuf {
		// Data-Out buffers of this session's commands would pass the
		// budget: TASK SET FULL, the initiator retries with fewer at once.
		s.writeBuf.Add(-int64(edtl))
		t.fail = &scsiResult{status: statusTaskSetFull}
		s.start(t)
		return nil
	}
	// A recycled buffer: only the bytes received (all of them, before the
	// command starts) are ever written.
	buf, release := getBuf(int(edtl))
	t.buf = buf
	t.release = func() {
		release()
		s.writeBuf.Add(-int64(len(buf)))
	}
	copy(t.buf, p.data)
	t.received = imm
	t.nextR2T = imm
	t.unsol = flags&0x80 == 0
	if t.unsol {
		// unsolicited Data-Out follows up to FirstBurstLength
		t.nextR2T = min(int(edtl), s.p.firstBurst)
	}
	if t.received == int(edtl) {
		s.start(t)
		return nil
	}
	if !t.unsol {
		s.issueR2Ts(t)
	}
	return nil
}

// releaseSlot gives back the window slot of a command we did not take.
func (s *session) releaseSlot(p *pdu) {
	if !p.immediate() {
		s.send(outPDU{complete: true})
	}
}

// issueR2Ts asks for more data, up to MaxOutstandingR2T at a time.
func (s *session) issueR2Ts(t *task) {
	edtl := int(t.req.edtl)
	for t.r2tOut < s.p.maxOutstandingR2T && t.nextR2T < edtl {
		n := min(s.p.maxBurst, edtl-t.nextR2T)
		r := newPDU(opR2T)
		copy(r.bhs[8:16], t.lunRaw[:])
		r.put32(16, t.itt)
		s.mu.Lock()
		r.put32(20, s.newTTT())
		s.mu.Unlock()
		r.put32(36, t.r2tSN)
		r.put32(40, uint32(t.nextR2T))
		r.put32(44, uint32(n))
		t.r2tSN++
		t.r2tOut++
		t.nextR2T += n
		s.send(outPDU{p: r})
	}
}

// dataOut takes one Data-Out PDU.
func (s *session) dataOut(p *pdu) error {
	s.mu.Lock()
	t := s.tasks[p.itt()]
	s.mu.Unlock()
	if t == nil || t.started || t.buf == nil {
		s.reject(p, rejectInvalidField)
		return nil
	}
	off := int(p.u32(40))
	if off != t.received || off+len(p.data) > len(t.buf) {
		// ERL 0: data out of order or beyond the expected length cannot be
		// recovered; the session ends.
		return fmt.Errorf("data-out for task 0x%x at offset %d (expected %d, %d bytes)", t.itt, off, t.received, len(p.data))
	}
	if p.u32(36) != t.dataSN {
		// A DataSN out of sequence: the data cannot be trusted. Take the
		// rest of the transfer, write nothing, and fail the command.
		t.dataErr = true
		t.dataSN = p.u32(36)
	}
	copy(t.buf[off:], p.data)
	t.received += len(p.data)
	t.dataSN++
	if p.final() {
		t.dataSN = 0
		if p.u32(20) == reservedTag {
			t.unsol = false
		} else if t.r2tOut > 0 {
			t.r2tOut--
		}
	}
	if t.received == len(t.buf) {
		s.start(t)
		return nil
	}
	if p.final() {
		s.issueR2Ts(t)
	}
	return nil
}

// start marks a fully received command ready; the read loop hands it to
// the workers (startReady) once no received PDU is left unprocessed.
func (s *session) start(t *task) {
	t.started = true
	if t.buf != nil {
		t.req.out = t.buf
	}
	s.ready = append(s.ready, t)
}

// startReady starts the ready commands (read loop only): a READ or WRITE
// the volume can serve asynchronously starts at once (startAsyncRead,
// startAsyncWrite), any other command goes to the workers.
func (s *session) startReady() {
	for _, t := range s.ready {
		if !s.startAsyncRead(t) && !s.startAsyncWrite(t) {
			s.work <- t
		}
	}
	s.ready = s.ready[:0]
}

// startAsyncWrite starts t as an asynchronous write if it is one (its
// Data-Out all received); its completion recycles the buffer and sends the
// answer. It returns false, having done nothing, otherwise.
func (s *session) startAsyncWrite(t *task) bool {
	if s.exp == nil || t.fail != nil || t.dataErr || t.buf == nil || s.closing.Load() || s.isAborted(t) {
		return false
	}
	s.async.Add(1)
	started := s.exp.unit.writeAsync(&t.req, func(res scsiResult) {
		defer s.async.Done()
		s.finish(t, &res) // recycles t.buf: the volume is done with it
	})
	if !started {
		s.async.Done()
	}
	return started
}

// startAsyncRead starts t as an asynchronous read if it is one, within the
// session's read budget; its completion sends the answer. It returns
// false, having done nothing, otherwise.
func (s *session) startAsyncRead(t *task) bool {
	if s.exp == nil || t.fail != nil || t.dataErr || t.buf != nil || s.closing.Load() || s.isAborted(t) {
		return false
	}
	n := int64(t.req.edtl)
	if s.readBuf.Add(n) > maxSessionReadBuf {
		// Past the budget the command waits for a worker: at most
		// cfg.Workers more buffers.
		s.readBuf.Add(-n)
		return false
	}
	s.async.Add(1)
	started := s.exp.unit.readAsync(&t.req, func(res scsiResult) {
		defer s.async.Done()
		rel := res.release
		res.release = func() {
			if rel != nil {
				rel()
			}
			s.readBuf.Add(-n)
		}
		s.finish(t, &res)
	})
	if !started {
		s.readBuf.Add(-n)
		s.async.Done()
	}
	return started
}

// worker executes commands; several run at once, and they complete in any
// order.
func (s *session) worker() {
	for t := range s.work {
		var res *scsiResult
		switch {
		case s.closing.Load() || s.isAborted(t):
		case t.fail != nil:
			res = t.fail
		case t.dataErr:
			r := checkCondition(senseAbortedCommand, ascDataPhaseError)
			res = &r
		default:
			r := s.exp.unit.execute(&t.req)
			res = &r
		}
		s.dropBuf(t) // the write is done: nothing reads buf now
		s.finish(t, res)
	}
}

// dropBuf recycles a write's Data-Out buffer and gives back its share of
// the session's budget, once: by the worker after the command ran, or by
// finish for a command that never started (aborted while collecting data).
func (s *session) dropBuf(t *task) {
	if t.release != nil {
		t.req.out, t.buf = nil, nil
		t.release()
		t.release = nil
	}
}

func (s *session) isAborted(t *task) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return t.aborted
}

// finish sends a command's Data-In and status (unless it was aborted) and
// forgets it.
func (s *session) finish(t *task, res *scsiResult) {
	s.dropBuf(t)
	s.mu.Lock()
	aborted := t.aborted
	delete(s.tasks, t.itt)
	s.mu.Unlock()
	s.observeCommand(t, res, aborted)
	if res == nil || aborted {
		if res != nil && res.release != nil {
			res.release()
		}
		s.send(outPDU{complete: !t.immediate})
		close(t.done)
		return
	}
	var items []outPDU
	withStatus := res.status == statusGood && len(res.sense) == 0 && len(res.data) > 0
	seg := s.p.initiatorMaxRecv
	var dataSN uint32
	for off := 0; off < len(res.data); off += seg {
		end := min(off+seg, len(res.data))
		d := newPDU(opDataIn)
		d.bhs[1] = 0
		last := end == len(res.data)
		if last || (end%s.p.maxBurst) == 0 {
			d.bhs[1] |= 0x80
		}
		copy(d.bhs[8:16], t.lunRaw[:])
		d.put32(16, t.itt)
		d.put32(20, reservedTag)
		d.put32(36, dataSN)
		d.put32(40, uint32(off))
		d.data = res.data[off:end]
		dataSN++
		it := outPDU{p: d, noSeq: true}
		if last && withStatus {
			d.bhs[1] |= 0x01
			d.bhs[3] = res.status
			d.put32(44, res.residual)
			if res.overflow {
				d.bhs[1] |= 0x04
			} else if res.underflow {
				d.bhs[1] |= 0x02
			}
			it = outPDU{p: d, status: true, complete: !t.immediate}
		}
		items = append(items, it)
	}
	if !withStatus {
		r := newPDU(opSCSIResp)
		if res.overflow {
			r.bhs[1] |= 0x04
		} else if res.underflow {
			r.bhs[1] |= 0x02
		}
		r.bhs[3] = res.status
		r.put32(16, t.itt)
		r.put32(36, dataSN+t.r2tSN)
		r.put32(44, res.residual)
		if len(res.sense) > 0 {
			r.data = make([]byte, 2+len(res.sense))
			binary.BigEndian.PutUint16(r.data, uint16(len(res.sense)))
			copy(r.data[2:], res.sense)
		}
		items = append(items, outPDU{p: r, status: true, complete: !t.immediate})
	}
	if res.release != nil {
		if len(res.data) > 0 {
			// the last Data-In: the writer recycles the buffer once it is out
			for i := len(items) - 1; i >= 0; i-- {
				if items[i].p.opcode() == opDataIn {
					items[i].release = res.release
					break
				}
			}
		} else {
			res.release()
		}
	}
	s.send(items...)
	close(t.done)
}
