package iscsi

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/logging"
)

// slowVolume delays every write: a command stays in progress.
type slowVolume struct {
	*memVolume
	delay time.Duration
}

func (v slowVolume) WriteAt(p []byte, off int64) (int, error) {
	time.Sleep(v.delay)
	return v.memVolume.WriteAt(p, off)
}

// serveUntil serves tg on a free port until the returned cancel is
// called; done is closed when Serve has returned.
func serveUntil(t *testing.T, cfg Config) (tg *Target, addr string, cancel func(), done chan struct{}) {
	t.Helper()
	addr = freeAddr(t)
	cfg.Listen = []string{addr}
	tg, err := New(cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() {
		defer close(done)
		if err := tg.Serve(ctx); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	t.Cleanup(func() { cancel(); <-done; tg.Close() })
	return tg, addr, cancel, done
}

// TestGracefulStop: when Serve's context ends, a session is told by an
// Async Message (event 3, Time2Wait) that the target drops it, the write
// in progress finishes and is answered GOOD with its data on the volume, a
// command sent after the message is not started, and the connection
// closes; new logins are refused from the start of the stop.
func TestGracefulStop(t *testing.T) {
	tg, addr, stop, done := serveUntil(t, Config{Time2Wait: 2 * time.Second})
	vol := slowVolume{newMemVolume(1 << 20), 300 * time.Millisecond}
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	data := bytes.Repeat([]byte{0xa5}, 4096)
	w := c.submit(rw10(0x2a, 8, 8), 4096, false, data)
	time.Sleep(50 * time.Millisecond) // the write is in the volume now
	stop()
	var async *pdu
	for async == nil {
		p := c.mustRecv()
		if p.opcode() == opAsync {
			async = p
			continue
		}
		c.handle(p)
	}
	if ev, t2w, t2r := async.bhs[36], async.u16(40), async.u16(42); ev != asyncDropAllConnections || t2w != 2 || t2r != 0 {
		t.Fatalf("async message: event %d Time2Wait %d Time2Retain %d; want 3, 2, 0", ev, t2w, t2r)
	}
	// Sent after the message: never started, never answered.
	late := c.submit(rw10(0x2a, 64, 8), 4096, false, bytes.Repeat([]byte{0x5a}, 4096))
	for {
		p, err := c.recv()
		if err != nil {
			break // closed by the target
		}
		c.handle(p)
	}
	if !w.done || w.status != statusGood {
		t.Fatalf("the write in progress at the stop: done %v status 0x%x", w.done, w.status)
	}
	if late.done {
		t.Fatal("a command sent after the drain message was answered")
	}
	got := vol.snapshot()
	if !bytes.Equal(got[8*512:16*512], data) || !bytes.Equal(got[64*512:72*512], make([]byte, 4096)) {
		t.Fatal("volume: the drained write is missing or the late one was executed")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("the portal still accepts connections after the stop")
	}
}

// TestGracefulStopBounded: a command that outlasts DrainTimeout does not
// hold the stop: the connection closes and Serve returns.
func TestGracefulStopBounded(t *testing.T) {
	tg, addr, stop, done := serveUntil(t, Config{DrainTimeout: 200 * time.Millisecond})
	vol := slowVolume{newMemVolume(1 << 20), 3 * time.Second}
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	c.submit(rw10(0x2a, 0, 8), 4096, false, make([]byte, 4096))
	time.Sleep(50 * time.Millisecond)
	begin := time.Now()
	stop()
	for {
		p, err := c.recv()
		if err != nil {
			break
		}
		if p.opcode() == opSCSIResp {
			t.Fatal("the slow write was answered before the drain bound")
		}
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("the connection closed %v after the stop; the bound is 200ms", d)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// TestReinstatementWaitsForOldCommands: a login that reinstates a session
// (same initiator, same ISID) is answered only once the old session's
// command in progress has finished, so no write of the old session can
// land after one of the new session.
func TestReinstatementWaitsForOldCommands(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	vol := &orderVolume{slowVolume: slowVolume{newMemVolume(1 << 20), 500 * time.Millisecond}}
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	old := dial(t, addr)
	if st, _ := old.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	old.submit(rw10(0x2a, 0, 8), 4096, false, bytes.Repeat([]byte{1}, 4096))
	time.Sleep(100 * time.Millisecond) // the old write is executing
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("reinstating login: 0x%04x", st)
	}
	loggedIn := time.Now()
	if done := vol.lastWrite(); done.IsZero() || done.After(loggedIn) {
		t.Fatalf("the new session was logged in (%v) before the old session's write finished (%v)", loggedIn, done)
	}
	// The new session's write is the one that stays.
	w := c.submit(rw10(0x2a, 0, 8), 4096, false, bytes.Repeat([]byte{2}, 4096))
	c.wait(w)
	if !bytes.Equal(vol.snapshot()[:4096], bytes.Repeat([]byte{2}, 4096)) {
		t.Fatal("the old session's write landed after the new session's")
	}
}

// orderVolume records when its last write finished.
type orderVolume struct {
	slowVolume
	mu   sync.Mutex
	last time.Time
}

func (v *orderVolume) WriteAt(p []byte, off int64) (int, error) {
	n, err := v.slowVolume.WriteAt(p, off)
	v.mu.Lock()
	v.last = time.Now()
	v.mu.Unlock()
	return n, err
}

func (v *orderVolume) lastWrite() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last
}
