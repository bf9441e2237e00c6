package iscsi

import (
	"os/exec"
	"testing"

	"github.com/bmi-go/bmi/internal/testenv"
)

// TestReservationsAcrossGateways: two targets (gateways) share one
// reservation store, as gateways share the state database; gateway A
// exports the disk, gateway B redirects logins for it to A. libiscsi's
// persistent-reservation suite (iscsi-test-cu SCSI.ProutReserve: two
// initiators, the first logging in at B's address and redirected, the
// second at A's) passes, since both sessions end on the owner. Then B
// takes the disk over (A stops exporting it, B exports it from the same
// store): a reservation taken through A is enforced by B (the other
// initiator's write is a reservation conflict, the holder's is good).
func TestReservationsAcrossGateways(t *testing.T) {
	cu := testenv.RequireCommand(t, "iscsi-test-cu", "libiscsi-bin")
	store := &memReservations{}
	vol := newMemVolume(64 << 20)
	a, addrA := startTarget(t, Config{Reservations: store})
	loc := &mapLocator{addrs: map[string]string{testIQN(7): addrA}}
	obs := &recObserver{}
	b, addrB := startTarget(t, Config{Reservations: store, Locator: loc, Logins: obs})
	mustExport(t, a, Export{IQN: testIQN(7), Volume: vol})

	// The suite, its first initiator redirected from B to A.
	cmd := exec.Command(cu, "-d", "-i", initiatorIQN, "-I", initiatorIQN+"-2", "-t", "SCSI.ProutReserve",
		url(addrB, testIQN(7), nil), url(addrA, testIQN(7), nil))
	cmd.Dir = t.TempDir()
	out, _ := cmd.CombinedOutput()
	rs := parseCU(string(out), []string{"SCSI.ProutReserve"})
	if len(rs) < 10 {
		t.Fatalf("iscsi-test-cu SCSI.ProutReserve through a redirect reported %d tests:\n%s", len(rs), out)
	}
	for _, r := range rs {
		if r.status != "PASS" {
			t.Fatalf("%s: %s through the redirect: %s\n%s", r.name, r.status, r.detail, out)
		}
	}
	obs.mu.Lock()
	redirected := 0
	for _, ev := range obs.events {
		if ev.RedirectedTo == addrA {
			redirected++
		}
	}
	obs.mu.Unlock()
	if redirected == 0 {
		t.Fatalf("gateway B redirected no login to A: the first initiator did not go through B")
	}
	t.Logf("iscsi-test-cu SCSI.ProutReserve: %d tests passed, %d logins redirected from B to A", len(rs), redirected)

	// A reservation taken through A, then B's take-over.
	const initA, initB = "iqn.2026-11.org.test:a", "iqn.2026-11.org.test:b"
	ca, cb := loginAs(t, addrA, initA, 1), loginAs(t, addrA, initB, 1)
	for _, s := range []struct {
		c        *client
		sa, typ  byte
		key, sak uint64
	}{{ca, prOutRegister, 0, 0, 0xa}, {cb, prOutRegister, 0, 0, 0xb}, {ca, prOutReserve, prWriteExclusive, 0xa, 0}} {
		if st, asc := prOut(s.c, s.sa, s.typ, s.key, s.sak); st != statusGood {
			t.Fatalf("PR OUT 0x%x through A: status 0x%x ASC 0x%04x", s.sa, st, asc)
		}
	}
	if err := a.Unexport(t0(), testIQN(7)); err != nil {
		t.Fatal(err)
	}
	delete(loc.addrs, testIQN(7))
	mustExport(t, b, Export{IQN: testIQN(7), Volume: vol})
	ca, cb = loginAs(t, addrB, initA, 1), loginAs(t, addrB, initB, 1)
	write := rw10(opWrite10, 0, 1)
	if st := status(cb, write); st != statusReservationConflict {
		t.Fatalf("after the take-over, the other initiator's write under A's reservation: 0x%x, want a reservation conflict", st)
	}
	if st := status(ca, write); st != statusGood {
		t.Fatalf("after the take-over, the holder's write: 0x%x", st)
	}
}
