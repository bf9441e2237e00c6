package iscsi

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/logging"
)

// memReservations is a ReservationStore in memory, shared by the Targets
// of a test the way bmid's state database outlives a bmid process.
type memReservations struct {
	mu   sync.Mutex
	m    map[string][]byte
	fail bool
}

func (s *memReservations) LoadReservations(_ context.Context, iqn string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[iqn], nil
}

func (s *memReservations) SaveReservations(_ context.Context, iqn string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("store down")
	}
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[iqn] = append([]byte(nil), b...)
	return nil
}

func (s *memReservations) DeleteReservations(_ context.Context, iqn string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, iqn)
	return nil
}

// prOut sends PERSISTENT RESERVE OUT and returns its status and ASC.
func prOut(c *client, sa, typ byte, key, saKey uint64) (byte, uint16) {
	cdb := make([]byte, 10)
	cdb[0], cdb[1], cdb[2] = opPROut, sa, typ
	binary.BigEndian.PutUint32(cdb[5:], prOutParamLen)
	par := make([]byte, prOutParamLen)
	binary.BigEndian.PutUint64(par, key)
	binary.BigEndian.PutUint64(par[8:], saKey)
	tk := c.submit(cdb, prOutParamLen, false, par)
	c.wait(tk)
	return tk.status, senseASC(tk.sense)
}

// prIn sends PERSISTENT RESERVE IN and returns its data.
func prIn(c *client, sa byte) []byte {
	cdb := make([]byte, 10)
	cdb[0], cdb[1] = opPRIn, sa
	binary.BigEndian.PutUint16(cdb[7:], 1024)
	tk := c.submit(cdb, 1024, true, nil)
	c.wait(tk)
	if tk.status != statusGood {
		c.t.Fatalf("PERSISTENT RESERVE IN %d: status 0x%x", sa, tk.status)
	}
	return tk.in
}

// senseASC is the ASC/ASCQ of fixed-format sense data.
func senseASC(s []byte) uint16 {
	if len(s) < 14 {
		return 0
	}
	return uint16(s[12])<<8 | uint16(s[13])
}

// status sends a data-less command or a one-block WRITE(10)/READ(10) and
// returns its status.
func status(c *client, cdb []byte) byte {
	var tk *ctask
	switch cdb[0] {
	case opWrite10:
		tk = c.submit(cdb, 512, false, make([]byte, 512))
	case opRead10:
		tk = c.submit(cdb, 512, true, nil)
	default:
		tk = c.submit(cdb, 0, false, nil)
	}
	c.wait(tk)
	return tk.status
}

// loginAs logs in as initiator with isid.
func loginAs(t *testing.T, addr, initiator string, isid byte) *client {
	c := dial(t, addr)
	c.isid = [6]byte{0x80, 0, 0, 0, 0, isid}
	if st, _ := c.login(loginOpts{initiator: initiator, target: testIQN(7)}); st != 0 {
		t.Fatalf("login of %s/%d: 0x%04x", initiator, isid, st)
	}
	return c
}

// serveUntil serves a Target like startTarget; stop stops it as bmid
// stops: Serve's context ends (sessions close without a logout), then
// Close.
func serveUntil(t *testing.T, cfg Config) (*Target, string, func()) {
	t.Helper()
	cfg.Listen = []string{freeAddr(t)}
	tg, err := New(cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tg.Serve(ctx) }()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", cfg.Listen[0])
		if err == nil {
			c.Close()
			break
		}
		if i > 500 {
			t.Fatalf("target did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Serve: %v", err)
			}
			if err := tg.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return tg, cfg.Listen[0], stop
}

// TestReservationsSurviveRestart: persistent reservations, their errors,
// and their state across a restart of the target with the same store;
// SPC-2 reservations end with their I_T nexus but not with a stop; and
// ReleaseReservations (deprovisioning) forgets them.
func TestReservationsSurviveRestart(t *testing.T) {
	store := &memReservations{}
	vol := newMemVolume(1 << 20)
	const initA, initB = "iqn.2026-11.org.test:a", "iqn.2026-11.org.test:b"
	read, write := rw10(opRead10, 0, 1), rw10(opWrite10, 0, 1)

	tg, addr := startTarget(t, Config{Reservations: store})
	mustExport(t, tg, Export{IQN: testIQN(7), Volume: vol})
	a, a2, b := loginAs(t, addr, initA, 1), loginAs(t, addr, initA, 2), loginAs(t, addr, initB, 1)

	steps := []struct {
		name   string
		c      *client
		sa     byte
		typ    byte
		key    uint64
		saKey  uint64
		status byte
		asc    uint16
	}{
		{"reserve before registering", a, prOutReserve, prWriteExclusive, 0, 0, statusReservationConflict, 0},
		{"register with a key it does not have", a, prOutRegister, 0, 7, 0xa, statusReservationConflict, 0},
		{"register A", a, prOutRegister, 0, 0, 0xa, statusGood, 0},
		{"re-register A with the wrong key", a, prOutRegister, 0, 0xbad, 0xa1, statusReservationConflict, 0},
		{"register B", b, prOutRegister, 0, 0, 0xb, statusGood, 0},
		{"A's second session is another nexus", a2, prOutReserve, prWriteExclusive, 0xa, 0, statusReservationConflict, 0},
		{"reserve with the wrong key", a, prOutReserve, prWriteExclusive, 0xb, 0, statusReservationConflict, 0},
		{"bad type", a, prOutReserve, 2, 0xa, 0, statusCheckCondition, ascInvalidFieldInCDB},
		{"A reserves write exclusive", a, prOutReserve, prWriteExclusive, 0xa, 0, statusGood, 0},
		{"B cannot reserve", b, prOutReserve, prWriteExclusive, 0xb, 0, statusReservationConflict, 0},
		{"preempt of a missing key", b, prOutPreempt, prWriteExclusive, 0xb, 0x77, statusReservationConflict, 0},
		{"release of another type", a, prOutRelease, prExclusiveAcc, 0xa, 0, statusCheckCondition, ascInvalidReleaseOfPR},
	}
	for _, s := range steps {
		if st, asc := prOut(s.c, s.sa, s.typ, s.key, s.saKey); st != s.status || asc != s.asc {
			t.Fatalf("%s: status 0x%x ASC 0x%04x, want 0x%x 0x%04x", s.name, st, asc, s.status, s.asc)
		}
	}
	if st := status(b, write); st != statusReservationConflict {
		t.Fatalf("B's write under A's write-exclusive reservation: 0x%x", st)
	}
	if st := status(b, read); st != statusGood {
		t.Fatalf("B's read under A's write-exclusive reservation: 0x%x", st)
	}

	// SPC-2 RESERVE is refused while registrations exist.
	if st := status(b, []byte{opReserve6, 0, 0, 0, 0, 0}); st != statusReservationConflict {
		t.Fatalf("RESERVE(6) with registrations: 0x%x", st)
	}

	// Restart: a new Target with the same store.
	for _, c := range []*client{a, a2, b} {
		c.logout()
	}
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	vol2 := newMemVolume(1 << 20)
	tg2, addr2, stop2 := serveUntil(t, Config{Reservations: store})
	mustExport(t, tg2, Export{IQN: testIQN(7), Volume: vol2})
	a, b = loginAs(t, addr2, initA, 1), loginAs(t, addr2, initB, 1)
	keys := prIn(b, 0)
	if n := binary.BigEndian.Uint32(keys[4:]); n != 16 || binary.BigEndian.Uint64(keys[8:]) != 0xa || binary.BigEndian.Uint64(keys[16:]) != 0xb {
		t.Fatalf("READ KEYS after the restart: %x", keys[:24])
	}
	res := prIn(b, 1)
	if binary.BigEndian.Uint32(res[4:]) != 16 || binary.BigEndian.Uint64(res[8:]) != 0xa || res[21] != prWriteExclusive {
		t.Fatalf("READ RESERVATION after the restart: %x", res[:24])
	}
	if st := status(b, write); st != statusReservationConflict {
		t.Fatalf("B's write after the restart: 0x%x", st)
	}
	if st := status(a, write); st != statusGood {
		t.Fatalf("A's write after the restart: 0x%x", st)
	}

	// A store that cannot save: the command fails and nothing changes.
	store.mu.Lock()
	store.fail = true
	store.mu.Unlock()
	if st, asc := prOut(a, prOutRelease, prWriteExclusive, 0xa, 0); st != statusCheckCondition || asc != ascInternalTargetFailure {
		t.Fatalf("release with the store down: 0x%x 0x%04x", st, asc)
	}
	store.mu.Lock()
	store.fail = false
	store.mu.Unlock()
	if st := status(b, write); st != statusReservationConflict {
		t.Fatalf("the failed release changed the reservation: B's write 0x%x", st)
	}

	// B preempts A: A's registration and reservation go.
	if st, _ := prOut(b, prOutPreempt, prExclusiveAcc, 0xb, 0xa); st != statusGood {
		t.Fatalf("preempt: 0x%x", st)
	}
	if st := status(a, read); st != statusReservationConflict {
		t.Fatalf("A's read under B's exclusive-access reservation: 0x%x", st)
	}
	if st, _ := prOut(b, prOutClear, 0, 0xb, 0); st != statusGood {
		t.Fatalf("clear: 0x%x", st)
	}

	// SPC-2: released when the holder's nexus is lost, kept at a stop.
	if st := status(a, []byte{opReserve6, 0, 0, 0, 0, 0}); st != statusGood {
		t.Fatalf("RESERVE(6): 0x%x", st)
	}
	if st := status(b, read); st != statusReservationConflict {
		t.Fatalf("B's read under A's RESERVE(6): 0x%x", st)
	}
	a.c.Close() // nexus loss
	deadline := 0
	for status(b, []byte{opReserve6, 0, 0, 0, 0, 0}) != statusGood {
		if deadline++; deadline > 200 {
			t.Fatal("A's RESERVE(6) outlived its connection")
		}
	}
	stop2() // bmid stops with B's session open: B keeps its reservation
	tg3, addr3 := startTarget(t, Config{Reservations: store})
	mustExport(t, tg3, Export{IQN: testIQN(7), Volume: newMemVolume(1 << 20)})
	a = loginAs(t, addr3, initA, 1)
	if st := status(a, []byte{opReserve6, 0, 0, 0, 0, 0}); st != statusReservationConflict {
		t.Fatalf("RESERVE(6) while B's survived the restart: 0x%x", st)
	}
	b = loginAs(t, addr3, initB, 1) // B's nexus again (same ISID)
	if st := status(b, []byte{opRelease6, 0, 0, 0, 0, 0}); st != statusGood {
		t.Fatalf("B's RELEASE(6) after the restart: 0x%x", st)
	}
	b.logout()
	if st := status(a, []byte{opReserve6, 0, 0, 0, 0, 0}); st != statusGood {
		t.Fatalf("RESERVE(6) after B's release: 0x%x", st)
	}
	if err := tg3.ReleaseReservations(context.Background(), testIQN(7)); err != nil {
		t.Fatal(err)
	}
	if got, _ := store.LoadReservations(context.Background(), testIQN(7)); got != nil {
		t.Fatalf("ReleaseReservations left %s", got)
	}
	b = loginAs(t, addr3, initB, 1)
	if st := status(b, write); st != statusGood {
		t.Fatalf("B's write after ReleaseReservations: 0x%x", st)
	}
}
