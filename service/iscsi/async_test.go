package iscsi

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// asyncVolume is a memVolume that also reads asynchronously, as
// service/ceph's Image does: each read completes on a goroutine of its
// own, once release has been called when hold is set.
type asyncVolume struct {
	*memVolume
	started  atomic.Int64 // ReadAsync calls that started a read
	wstarted atomic.Int64 // WriteAsync calls that started a write

	mu   sync.Mutex
	held chan struct{} // closed by release; nil: reads complete at once
}

func newAsyncVolume(size int) *asyncVolume { return &asyncVolume{memVolume: newMemVolume(size)} }

// ReadAsync reads on a goroutine of its own.
func (a *asyncVolume) ReadAsync(p []byte, off int64, done func(int, error)) error {
	a.started.Add(1)
	a.later(func() { done(a.ReadAt(p, off)) })
	return nil
}

// WriteAsync writes on a goroutine of its own, like ReadAsync.
func (a *asyncVolume) WriteAsync(p []byte, off int64, done func(int, error)) error {
	a.wstarted.Add(1)
	a.later(func() { done(a.WriteAt(p, off)) })
	return nil
}

// later runs io on a goroutine of its own, once released when held.
func (a *asyncVolume) later(io func()) {
	a.mu.Lock()
	held := a.held
	a.mu.Unlock()
	go func() {
		if held != nil {
			<-held
		}
		io()
	}()
}

// hold makes the requests started from now on wait for release.
func (a *asyncVolume) hold() {
	a.mu.Lock()
	a.held = make(chan struct{})
	a.mu.Unlock()
}

// release completes the held requests, and the later ones at once.
func (a *asyncVolume) release() {
	a.mu.Lock()
	if a.held != nil {
		close(a.held)
		a.held = nil
	}
	a.mu.Unlock()
}

// TestAsyncReads: with a volume that reads asynchronously, plain READs
// are served without a worker, out of order, with exactly the volume's
// bytes; the READs that are not plain (EDTL other than the transfer
// length, another LUN) are executed as before, with their residuals and
// sense; a failed asynchronous read is CHECK CONDITION, MEDIUM ERROR,
// UNRECOVERED READ ERROR, with no data.
func TestAsyncReads(t *testing.T) {
	tg, addr := startTarget(t, Config{QueueDepth: 16, Workers: 2})
	const size = 4 << 20
	vol := newAsyncVolume(size)
	want := vol.fillRandom(3)
	rng := rand.New(rand.NewPCG(3, 3))
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	for range 30 {
		var ts []*ctask
		var offs []int
		for range 12 {
			blocks := 1 + rng.IntN(256)
			lba := rng.IntN(size/512 - blocks)
			op, cdb := byte(0x28), rw10(0x28, uint32(lba), uint16(blocks))
			if rng.IntN(2) == 0 { // READ(16)
				op, cdb = 0x88, make([]byte, 16)
				cdb[0] = op
				binary.BigEndian.PutUint64(cdb[2:], uint64(lba))
				binary.BigEndian.PutUint32(cdb[10:], uint32(blocks))
			}
			ts = append(ts, c.submit(cdb, uint32(blocks*512), true, nil))
			offs = append(offs, lba*512)
		}
		c.wait(ts...)
		for i, tk := range ts {
			if tk.status != statusGood || tk.flags&0x06 != 0 || !bytes.Equal(tk.in, want[offs[i]:offs[i]+len(tk.in)]) {
				t.Fatalf("read %d: status 0x%x flags 0x%x, or other bytes than the volume's", i, tk.status, tk.flags)
			}
		}
	}
	if n := vol.started.Load(); n != 30*12 {
		t.Errorf("%d reads went through ReadAsync, want %d", n, 30*12)
	}

	before := vol.started.Load()
	// EDTL longer than the transfer: underflow, executed by a worker
	tk := c.submit(rw10(0x28, 8, 2), 2048, true, nil)
	c.wait(tk)
	if tk.status != statusGood || tk.flags&0x02 == 0 || tk.residual != 1024 || !bytes.Equal(tk.in[:1024], want[4096:5120]) {
		t.Errorf("underflowing read: status 0x%x flags 0x%x residual %d", tk.status, tk.flags, tk.residual)
	}
	// beyond the end: the worker's CHECK CONDITION
	tk = c.submit(rw10(0x28, size/512, 1), 512, true, nil)
	c.wait(tk)
	if tk.status != statusCheckCondition || len(tk.sense) < 14 || tk.sense[2]&0xf != 0x05 || tk.sense[12] != 0x21 {
		t.Errorf("read beyond the end: status 0x%x sense %x", tk.status, tk.sense)
	}
	// another LUN: the worker's CHECK CONDITION, LOGICAL UNIT NOT SUPPORTED
	c.lun = 1
	tk = c.submit(rw10(0x28, 0, 1), 512, true, nil)
	c.wait(tk)
	c.lun = 0
	if tk.status != statusCheckCondition || len(tk.sense) < 14 || tk.sense[12] != 0x25 {
		t.Errorf("read of LUN 1: status 0x%x sense %x", tk.status, tk.sense)
	}
	if n := vol.started.Load(); n != before {
		t.Errorf("%d reads that are not plain went through ReadAsync", n-before)
	}

	vol.setFail(true)
	for range 4 {
		tk := c.submit(rw10(0x28, 0, 8), 4096, true, nil)
		c.wait(tk)
		if tk.status != statusCheckCondition || len(tk.sense) < 14 || tk.sense[2]&0xf != 0x03 ||
			tk.sense[12] != 0x11 || tk.sense[13] != 0 {
			t.Errorf("failed asynchronous read: status 0x%x sense %x, want MEDIUM ERROR 11/00", tk.status, tk.sense)
		}
		if !bytes.Equal(tk.in, make([]byte, 4096)) {
			t.Error("a failed read sent data")
		}
	}
	vol.setFail(false)
	c.logout()
}

// TestAsyncReadAbortAndClose: an ABORT TASK of an asynchronous read in
// flight is answered once the read has ended, and the aborted read gets
// no answer while the others do; a session whose initiator goes away
// with reads in flight ends once they complete, and Unexport then closes
// the volume.
func TestAsyncReadAbortAndClose(t *testing.T) {
	tg, addr := startTarget(t, Config{QueueDepth: 16})
	vol := newAsyncVolume(1 << 20)
	copy(vol.data, bytes.Repeat([]byte("bmi!"), 1<<18))
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}

	vol.hold()
	var ts []*ctask
	for i := range 3 {
		ts = append(ts, c.submit(rw10(0x28, uint32(i*8), 8), 4096, true, nil))
	}
	abortSN := c.cmdSN - 2 // the second read's CmdSN
	waitFor(t, func() bool { return vol.started.Load() >= 3 })
	p := newPDU(opTMFReq)
	p.bhs[0] |= 0x40
	p.bhs[1] = 0x80 | tmfAbortTask
	p.put32(16, c.nextITT())
	p.put32(20, ts[1].itt)
	p.put32(24, c.cmdSN)
	p.put32(32, abortSN)
	c.send(p)
	time.Sleep(50 * time.Millisecond) // the TMF reaches the target, and waits
	vol.release()
	var tmfDone bool
	for !(tmfDone && ts[0].done && ts[2].done) {
		r := c.mustRecv()
		if r.opcode() == opTMFResp {
			if r.itt() != p.itt() || r.bhs[2] != tmfComplete {
				t.Fatalf("TMF response itt %d code %d", r.itt(), r.bhs[2])
			}
			tmfDone = true
			continue
		}
		if r.itt() == ts[1].itt {
			t.Fatalf("the aborted read was answered (opcode 0x%x)", r.opcode())
		}
		c.handle(r)
	}
	for _, i := range []int{0, 2} {
		if ts[i].status != statusGood || !bytes.Equal(ts[i].in, vol.snapshot()[i*4096:(i+1)*4096]) {
			t.Errorf("read %d: status 0x%x or wrong bytes", i, ts[i].status)
		}
	}

	// the initiator vanishes with reads in flight
	vol.hold()
	for i := range 4 {
		c.submit(rw10(0x28, uint32(i), 1), 512, true, nil)
	}
	waitFor(t, func() bool { return vol.started.Load() >= 3+4 })
	c.c.Close()
	time.Sleep(50 * time.Millisecond)
	vol.release()
	unexportWithin(t, tg, testIQN(1), 10*time.Second)
	if !vol.isClosed() {
		t.Error("the volume is still open after Unexport")
	}
}

// TestAsyncReadBudget: a session keeps at most maxSessionReadBuf bytes of
// asynchronous reads in flight; the READs past it are executed by the
// workers, and every one is answered with the volume's bytes.
func TestAsyncReadBudget(t *testing.T) {
	tg, addr := startTarget(t, Config{QueueDepth: 16, Workers: 2})
	const size = 64 << 20
	vol := newAsyncVolume(size)
	for i := range vol.data {
		vol.data[i] = byte(i / 4096)
	}
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	const per, reads = 8 << 20, 2 * maxSessionReadBuf / (8 << 20) // twice the budget
	// Twice: the budget is given back as reads are answered.
	for round := range 2 {
		vol.hold()
		start := vol.started.Load()
		var ts []*ctask
		for i := range reads {
			ts = append(ts, c.submit(rw10(0x28, uint32(i%8*per/512), per/512), per, true, nil))
		}
		waitFor(t, func() bool { return vol.started.Load()-start >= maxSessionReadBuf/per })
		time.Sleep(50 * time.Millisecond)
		if n := vol.started.Load() - start; n != maxSessionReadBuf/per {
			t.Errorf("round %d: %d asynchronous reads of %d MiB in flight, want %d (the budget)", round, n, per>>20, maxSessionReadBuf/per)
		}
		vol.release()
		c.wait(ts...)
		for i, tk := range ts {
			if tk.status != statusGood || !bytes.Equal(tk.in, vol.data[i%8*per:(i%8+1)*per]) {
				t.Errorf("round %d, read %d: status 0x%x or wrong bytes", round, i, tk.status)
			}
		}
		time.Sleep(50 * time.Millisecond) // the last Data-In buffers go back once written
	}
	c.logout()
}
