package iscsi

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
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

// serveStoppable serves tg on a free port until the returned cancel is
// called; done is closed when Serve has returned.
func serveStoppable(t *testing.T, cfg Config) (tg *Target, addr string, cancel func(), done chan struct{}) {
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
	tg, addr, stop, done := serveStoppable(t, Config{Time2Wait: 2 * time.Second})
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
	tg, addr, stop, done := serveStoppable(t, Config{DrainTimeout: 200 * time.Millisecond})
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

// TestReinstatedTwiceAtOnce: while a session is logged in, two logins
// with its initiator name and ISID race; whatever order they take, no
// login hangs past the login timeout, exactly one session is left and it
// reads and writes.
func TestReinstatedTwiceAtOnce(t *testing.T) {
	tg, addr := startTarget(t, Config{LoginTimeout: 3 * time.Second})
	vol := slowVolume{newMemVolume(1 << 20), 200 * time.Millisecond}
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	old := dial(t, addr)
	if st, _ := old.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	old.submit(rw10(0x2a, 0, 8), 4096, false, make([]byte, 4096)) // in progress during the race
	a, b := dial(t, addr), dial(t, addr)
	var wg sync.WaitGroup
	status := make([]uint16, 2)
	begin := time.Now()
	for i, c := range []*client{a, b} {
		// A login superseded by the other one may end in a closed
		// connection: that is an outcome, not a test failure.
		soft := &softTB{TB: t}
		c.t = soft
		wg.Add(1)
		go func() {
			defer wg.Done()
			status[i] = 0xffff
			status[i], _ = c.login(loginOpts{target: testIQN(1)})
		}()
	}
	wg.Wait()
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("the racing logins took %v; the bound is the login timeout (3s)", d)
	}
	waitFor(t, func() bool { return sessionsOf(t, tg) == 1 })
	var live *client
	for i, c := range []*client{a, b} {
		c.t = t
		if status[i] != 0 {
			continue
		}
		// The later login reinstated the earlier one: only the survivor
		// answers.
		c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		tk := c.submit(rw10(0x28, 0, 1), 512, true, nil)
		if p, err := c.recv(); err == nil {
			c.handle(p)
			c.wait(tk)
			if tk.status == statusGood {
				live = c
			}
		}
	}
	if live == nil {
		t.Fatalf("no session survived the race (login statuses 0x%04x, 0x%04x)", status[0], status[1])
	}
}

// softTB turns a helper's Fatal into the end of its goroutine, recorded.
type softTB struct {
	testing.TB
	mu     sync.Mutex
	failed string
}

func (s *softTB) Helper() {}

func (s *softTB) Fatalf(format string, args ...any) {
	s.mu.Lock()
	s.failed = fmt.Sprintf(format, args...)
	s.mu.Unlock()
	runtime.Goexit()
}

func (s *softTB) Fatal(args ...any) { s.Fatalf("%s", fmt.Sprint(args...)) }

// TestStaleCmdSNAfterReconnect: an initiator that logs in again and then
// sends a command with a CmdSN from before (below the new session's
// window) gets it dropped, not executed, and the session goes on with the
// CmdSN of its login.
func TestStaleCmdSNAfterReconnect(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	vol := newMemVolume(1 << 20)
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	old := dial(t, addr)
	old.cmdSN = 5000
	if st, _ := old.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	for range 3 {
		old.wait(old.submit(rw10(0x28, 0, 1), 512, true, nil))
	}
	c := dial(t, addr)
	c.cmdSN = 100 // a new session restarts its numbering
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("reinstating login: 0x%04x", st)
	}
	next := c.cmdSN
	c.cmdSN = 5003 // the old session's numbering: out of the new window
	stale := c.submit(rw10(0x2a, 16, 8), 4096, false, bytes.Repeat([]byte{0xee}, 4096))
	c.cmdSN = next
	fresh := c.submit(rw10(0x28, 0, 1), 512, true, nil)
	c.wait(fresh)
	if fresh.status != statusGood || stale.done {
		t.Fatalf("fresh command status 0x%x, stale one answered: %v", fresh.status, stale.done)
	}
	if !bytes.Equal(vol.snapshot()[16*512:24*512], make([]byte, 4096)) {
		t.Fatal("the command with a stale CmdSN was executed")
	}
}

// TestStopDuringUnexport: the target stops gracefully while an unexport
// waits for a session's slow command: both finish within their bounds,
// the volume is closed once, and nothing hangs.
func TestStopDuringUnexport(t *testing.T) {
	tg, addr, stop, done := serveStoppable(t, Config{DrainTimeout: 500 * time.Millisecond})
	vol := slowVolume{newMemVolume(1 << 20), time.Second}
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	c.submit(rw10(0x2a, 0, 8), 4096, false, make([]byte, 4096))
	time.Sleep(50 * time.Millisecond)
	unexported := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		unexported <- tg.Unexport(ctx, testIQN(1))
	}()
	stop()
	select {
	case err := <-unexported:
		if err != nil {
			t.Fatalf("Unexport during the stop: %v", err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("Unexport hung past its 5 s bound")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve hung past the drain bound")
	}
	if !vol.isClosed() {
		t.Fatal("the unexported target's volume is not closed")
	}
	if list, _ := tg.List(t0()); len(list) != 0 {
		t.Fatalf("targets left: %v", list)
	}
}
