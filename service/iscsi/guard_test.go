package iscsi

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// recGuard throttles after max failures per remote and records events.
type recGuard struct {
	mu     sync.Mutex
	max    int
	fails  map[string]int
	events []LoginEvent
}

func (g *recGuard) Allow(remote, _ string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.fails[remote] < g.max
}

func (g *recGuard) Done(ev LoginEvent) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.events = append(g.events, ev)
	if ev.AuthFailed {
		g.fails[ev.Remote]++
	}
}

// waitEvents waits until the guard heard n events (the target tells it
// after it answered the initiator) and returns them, holding g.mu.
func (g *recGuard) waitEvents(n int) []LoginEvent {
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		g.mu.Lock()
		if len(g.events) >= n || time.Now().After(end) {
			return g.events
		}
		g.mu.Unlock()
	}
}

func TestSetInitiators(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20), CHAP: nodeCHAP})
	node := "iqn.2026-11.org.bmi:lab.node.node-01"
	login := func(initiator string) uint16 {
		st, _ := dial(t, addr).login(loginOpts{target: testIQN(1), chap: nodeCHAP, initiator: initiator})
		return st
	}
	if st := login("iqn.2026-11.org.test:any"); st != loginOK {
		t.Fatalf("before an ACL: login 0x%04x, want OK", st)
	}
	if err := tg.SetInitiators(t0(), testIQN(1), []string{node}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		initiator string
		want      uint16
	}{
		"node":                 {node, loginOK},
		"stolen secret":        {"iqn.2026-11.org.test:intruder", loginForbidden},
		"not an iqn":           {"not-an-iqn", loginForbidden},
		"node name upper case": {strings.ToUpper(node), loginForbidden},
	} {
		if st := login(c.initiator); st != c.want {
			t.Errorf("%s: login as %q = 0x%04x, want 0x%04x", name, c.initiator, st, c.want)
		}
	}
	if err := tg.SetInitiators(t0(), testIQN(1), nil); err != nil {
		t.Fatal(err)
	}
	if st := login(node); st != loginForbidden {
		t.Fatalf("empty ACL: login 0x%04x, want forbidden", st)
	}
	if err := tg.SetInitiators(t0(), testIQN(9), nil); err == nil {
		t.Fatal("SetInitiators on a missing target succeeded")
	}
}

func TestLoginGuard(t *testing.T) {
	g := &recGuard{max: 3, fails: map[string]int{}}
	tg, addr := startTarget(t, Config{Guard: g})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20), CHAP: nodeCHAP})
	bad := &CHAP{User: nodeCHAP.User, Secret: "wrong-secret-000"}
	var got []uint16
	for i := 0; i < 5; i++ {
		st, _ := dial(t, addr).login(loginOpts{target: testIQN(1), chap: bad})
		got = append(got, st)
	}
	want := []uint16{loginAuthFailed, loginAuthFailed, loginAuthFailed, loginThrottled, loginThrottled}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses of 5 bad logins = %x, want %x", got, want)
		}
	}
	// Throttled: even the right secret is refused without being checked.
	if st, _ := dial(t, addr).login(loginOpts{target: testIQN(1), chap: nodeCHAP}); st != loginThrottled {
		t.Fatalf("right secret from a throttled source: 0x%04x, want throttled", st)
	}
	g.waitEvents(6)
	defer g.mu.Unlock()
	if len(g.events) != 6 || g.events[0].User != nodeCHAP.User || g.events[0].Target != testIQN(1) || !g.events[0].AuthFailed ||
		g.events[3].AuthFailed || g.events[0].Remote != "127.0.0.1" {
		t.Fatalf("guard events %+v", g.events)
	}
	g.fails["127.0.0.1"] = 0
	g.events = nil
	g.mu.Unlock()
	st, _ := dial(t, addr).login(loginOpts{target: testIQN(1), chap: nodeCHAP})
	g.waitEvents(1)
	if st != loginOK || len(g.events) != 1 || !g.events[0].OK {
		t.Fatalf("good login after the bucket refilled: 0x%04x, events %+v", st, g.events)
	}
}

func TestNodeInitiator(t *testing.T) {
	for node, want := range map[string]string{
		"node-01": "iqn.2026-11.org.bmi:lab.node.node-01",
		"Node-01": "iqn.2026-11.org.bmi:lab.node.node-01-",
	} {
		got := NodeInitiator("iqn.2026-11.org.bmi", "lab", node)
		if !strings.HasPrefix(got, want) || !ValidIQN(got) {
			t.Errorf("NodeInitiator(%q) = %q, want a valid IQN starting %q", node, got, want)
		}
	}
	if NodeInitiator("iqn.2026-11.org.bmi", "lab", "a b") == NodeInitiator("iqn.2026-11.org.bmi", "lab", "a_b") {
		t.Error("two node names share an initiator name")
	}
}

func TestSetCHAP(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20), CHAP: nodeCHAP})
	held := dial(t, addr)
	// Another initiator name: the later logins (same ISID) must not
	// reinstate, and so end, this session.
	if st, _ := held.login(loginOpts{target: testIQN(1), chap: nodeCHAP, initiator: "iqn.2026-11.org.test:held"}); st != loginOK {
		t.Fatalf("login before rotation: 0x%04x", st)
	}
	rotated := CHAP{User: nodeCHAP.User, Secret: "rotated-secret-0001"}
	if err := tg.SetCHAP(t0(), testIQN(1), rotated); err != nil {
		t.Fatal(err)
	}
	if err := tg.SetCHAP(t0(), testIQN(1), CHAP{User: "u", Secret: "short"}); err == nil {
		t.Fatal("SetCHAP accepted a 5-byte secret")
	}
	if st, _ := dial(t, addr).login(loginOpts{target: testIQN(1), chap: nodeCHAP}); st != loginAuthFailed {
		t.Fatalf("old secret after rotation: 0x%04x, want auth failed", st)
	}
	if st, _ := dial(t, addr).login(loginOpts{target: testIQN(1), chap: &rotated}); st != loginOK {
		t.Fatalf("new secret after rotation: 0x%04x", st)
	}
	// The session logged in before the rotation goes on.
	tk := held.submit(rw10(0x28, 0, 1), 512, true, nil)
	held.wait(tk)
	if tk.status != statusGood {
		t.Fatalf("read on the session from before the rotation: 0x%x", tk.status)
	}
}

// recObserver records what a LoginObserver hears.
type recObserver struct {
	mu     sync.Mutex
	events []LoginEvent
}

func (o *recObserver) ObserveLogin(ev LoginEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, ev)
}

func TestLoginObserver(t *testing.T) {
	o := &recObserver{}
	tg, addr := startTarget(t, Config{Logins: o})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20), CHAP: nodeCHAP})
	const node = "iqn.2026-11.org.bmi:lab.node.node-01"
	ipxe := dial(t, addr)
	ipxe.isid = [6]byte{0x40, 0x00, 0x27, 0x23, 0xab, 0xcd}
	if st, _ := ipxe.login(loginOpts{target: testIQN(1), chap: nodeCHAP, initiator: node}); st != loginOK {
		t.Fatalf("first login 0x%04x", st)
	}
	if st, _ := dial(t, addr).login(loginOpts{target: testIQN(1), chap: nodeCHAP, initiator: node}); st != loginOK {
		t.Fatalf("second login 0x%04x", st)
	}
	bad := &CHAP{User: nodeCHAP.User, Secret: "wrong-secret-000"}
	if st, _ := dial(t, addr).login(loginOpts{target: testIQN(1), chap: bad, initiator: node}); st != loginAuthFailed {
		t.Fatalf("bad login 0x%04x", st)
	}
	var evs []LoginEvent
	for end := time.Now().Add(5 * time.Second); len(evs) < 3 && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		o.mu.Lock()
		evs = append([]LoginEvent(nil), o.events...)
		o.mu.Unlock()
	}
	// Each connection reports its own login when it ends, so logins on
	// different connections may be heard in any order.
	want := map[string]int{"40002723abcd ok": 1, "800000123456 ok": 1, "800000123456 refused": 1}
	if len(evs) != 3 {
		t.Fatalf("observer heard %d logins, want 3: %+v", len(evs), evs)
	}
	for i, ev := range evs {
		k := ev.ISID + map[bool]string{true: " ok", false: " refused"}[ev.OK]
		if want[k] == 0 || ev.Initiator != node || ev.Target != testIQN(1) || ev.Remote != "127.0.0.1" || ev.AuthFailed == ev.OK {
			t.Errorf("login %d: %+v, want one of %v from %s at 127.0.0.1", i, ev, want, node)
		}
		want[k]--
	}
}
