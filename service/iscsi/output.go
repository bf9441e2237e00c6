package iscsi

import (
	"net"
	"sync"
	"time"
)

// outPDU is one PDU to send; status PDUs advance StatSN, and complete
// releases one slot of the command window.
type outPDU struct {
	p        *pdu
	status   bool
	complete bool
	noSeq    bool // Data-In without status: StatSN is reserved
	// release, if set, recycles the buffer p.data points into; it is called
	// once p is written (or dropped on a broken connection).
	release func()
}

// output is a session's send side. There is no writer goroutine: the
// first goroutine that sends while nobody is writing becomes the writer
// and sends everything queued until the queue is empty, others only
// queue (flat combining). A completion is thus written by the worker
// that produced it, without waking another goroutine, and completions
// that pile up while a write is in progress go out together, in one
// writev. Sequence numbers are filled in at write time, so StatSN follows
// the order on the wire.
type output struct {
	s       *session
	bufs    net.Buffers // the batch being written (writer only)
	max     int         // queued items past which senders wait (backpressure)
	mu      sync.Mutex
	cond    sync.Cond // the queue shrank, or writing stopped
	queue   []outPDU
	spare   []outPDU
	writing bool
	closed  bool // no more sends: items are dropped
	broken  bool // a write failed: items are dropped (only the writer touches it)
}

func (o *output) init(s *session, max int) {
	o.s, o.max = s, max
	o.cond.L = &o.mu
}

// send queues items and writes them, with whatever else is queued, unless
// another goroutine is writing (it will). It waits while the queue is
// full: an initiator that does not read stalls its own session only.
func (s *session) send(items ...outPDU) {
	o := &s.out
	o.mu.Lock()
	for len(o.queue) >= o.max && !o.closed {
		o.cond.Wait()
	}
	if !o.enqueue(items) {
		o.mu.Unlock()
		return
	}
	o.drain() // unlocks
}

// post queues items without waiting and without writing in the calling
// goroutine (the pinger: it must stay free to notice a dead initiator
// even if the connection blocks); a new goroutine writes them if nobody
// is writing. It ignores the queue's bound: the pinger has one ping out
// at most, and a ping dropped would end a live session at its timeout.
func (o *output) post(items ...outPDU) {
	o.mu.Lock()
	if !o.enqueue(items) {
		o.mu.Unlock()
		return
	}
	o.mu.Unlock()
	go func() {
		o.mu.Lock()
		o.drain() // enqueue made us the writer
	}()
}

// enqueue adds items (o.mu held). It reports whether the caller must
// write: false if the items were dropped or another goroutine is writing.
func (o *output) enqueue(items []outPDU) bool {
	if o.closed {
		return false
	}
	o.queue = append(o.queue, items...)
	if o.writing {
		return false
	}
	o.writing = true
	return true
}

// drain writes the queue until it is empty, then stops being the writer.
// Called with o.mu held and o.writing set by the caller; returns with
// o.mu released.
func (o *output) drain() {
	for len(o.queue) > 0 {
		batch := o.queue
		o.queue = o.spare[:0]
		o.cond.Broadcast()
		o.mu.Unlock()
		o.write(batch)
		clear(batch)
		o.mu.Lock()
		o.spare = batch[:0]
	}
	o.writing = false
	o.cond.Broadcast()
	o.mu.Unlock()
}

// write sends a batch in one writev (only the writer calls it): data
// segments go from their buffers to the socket without being copied.
func (o *output) write(batch []outPDU) {
	s := o.s
	bufs := o.bufs[:0]
	for _, it := range batch {
		s.mu.Lock()
		if it.complete && s.inflight > 0 {
			s.inflight--
		}
		if it.p != nil {
			if !it.noSeq {
				it.p.put32(24, s.statSN)
			}
			if it.status {
				s.statSN++
			}
			it.p.put32(28, s.expCmdSN)
			it.p.put32(32, s.window())
		}
		s.mu.Unlock()
		if it.p != nil && !o.broken {
			var err error
			if bufs, err = it.p.appendTo(bufs, s.dig); err != nil {
				o.fail()
			}
		}
	}
	if !o.broken && len(bufs) > 0 {
		all := bufs // WriteTo consumes its receiver
		if _, err := all.WriteTo(s.c); err != nil {
			o.fail()
		}
	}
	// Written (or dropped): nothing refers to the recycled buffers now.
	for _, it := range batch {
		if it.release != nil {
			it.p.data = nil
			it.release()
		}
	}
	clear(bufs)
	o.bufs = bufs[:0]
}

// fail marks the connection broken and closes it (the reader sees it).
func (o *output) fail() {
	o.broken = true
	o.s.close()
}

// flush waits up to d for what is queued to be written.
func (o *output) flush(d time.Duration) {
	end := time.Now().Add(d)
	o.mu.Lock()
	defer o.mu.Unlock()
	for (o.writing || len(o.queue) > 0) && !o.closed && time.Now().Before(end) {
		o.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		o.mu.Lock()
	}
}

// shut waits for what is queued to be written, then drops every later
// send. It is called once no worker or reader can send any more.
func (o *output) shut() {
	o.mu.Lock()
	for o.writing || len(o.queue) > 0 {
		o.cond.Wait()
	}
	o.closed = true
	o.cond.Broadcast()
	o.mu.Unlock()
}

// shutWait bounds the last writes of a session that is ending (once its
// reader has stopped): an initiator that does not read cannot hold it.
const shutWait = 10 * time.Second
