//go:build ceph_preview

package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/store"
)

// The SCSI reservation phase of TestGateways. A disk's ACL admits only
// its node's initiator name, and that is enough for two initiators in the
// sense of SCSI: reservations belong to an I_T nexus, the initiator port
// "<initiator name>,i,0x<ISID>" (SPC-4 §5.13, RFC 7143 §4.4.2), so two
// sessions of the node's name with different ISIDs are two nexuses, the
// way a node's two HBAs or two open-iscsi ifaces are. libiscsi gives each
// of its contexts a random ISID, so iscsi-test-cu's two initiators can
// share the node's name (-i and -I).

// prFamilies are libiscsi's persistent-reservation suites run across the
// gateways.
const prFamilies = "SCSI.ProutRegister,SCSI.ProutReserve,SCSI.ProutClear,SCSI.ProutPreempt," +
	"SCSI.PrinReadKeys,SCSI.PrinReportCapabilities,SCSI.PrinServiceactionRange"

var (
	// cuTestsRE is the tests row of CUnit's run summary: total, ran,
	// passed, failed, inactive.
	cuTestsRE   = regexp.MustCompile(`(?m)^\s+tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)`)
	cuSkippedRE = regexp.MustCompile(`\[SKIPPED\]`)
)

// reserveOn runs libiscsi's reservation suites on the disk of a node
// (not nodes[0], which TestGateways provisions again later) placed on gw,
// then takes a reservation on it through gw.
func reserveOn(t *testing.T, db *store.DB, gw *gatewayProc, portal string, initiator func(string) string, nodes []*gwNode) *gwReservation {
	t.Helper()
	pl := placements(t, db.SQL())
	for _, n := range nodes[1:] {
		if pl[n.disk.Target.IQN] != gw.id {
			continue
		}
		tg, err := db.Target(context.Background(), n.disk.ID)
		if err != nil {
			t.Fatal(err)
		}
		runPRSuites(t, initiator(n.name), portal, gw, tg)
		return takeReservation(t, db, initiator(n.name), portal, gw, tg)
	}
	t.Fatalf("no disk but nodes[0]'s is placed on %s: %v", gw.id, pl)
	return nil
}

// runPRSuites runs prFamilies with the node's initiator name for both of
// iscsi-test-cu's initiators: the first logs in at the group's portal
// (held by another gateway, which redirects it), the second at the
// owner's own address, so both sessions end on the owner. Every test must
// pass.
func runPRSuites(t *testing.T, initiator, portal string, owner *gatewayProc, tg core.Target) {
	t.Helper()
	cu, err := exec.LookPath("iscsi-test-cu")
	if err != nil {
		t.Fatalf("iscsi-test-cu (libiscsi-bin): %v", err)
	}
	cmd := exec.Command(cu, "-d", "-i", initiator, "-I", initiator, "-t", prFamilies,
		iscsiURL(portal, tg), iscsiURL(owner.cfg.Gateway.Addresses[0], tg))
	cmd.Dir = t.TempDir()
	out, _ := cmd.CombinedOutput()
	m := cuTestsRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("iscsi-test-cu %s: no run summary:\n%s", prFamilies, out)
	}
	passed, _ := strconv.Atoi(string(m[3]))
	if string(m[2]) != string(m[3]) || string(m[4]) != "0" || cuSkippedRE.Match(out) || passed < 20 {
		t.Fatalf("iscsi-test-cu %s as %s (twice) through the portal and %s: %d passed, some failed or skipped:\n%s",
			prFamilies, initiator, owner.id, passed, out)
	}
	t.Logf("iscsi-test-cu %s: %d tests passed, two nexuses of %s on %s (one redirected by the portal)", prFamilies, passed, initiator, owner.id)
}

// The two I_T nexuses of the node: one ISID each, kept when they log in
// again, as a real initiator keeps its session's ISID.
var nexusISID = [2][6]byte{{0x80, 0x62, 0x6d, 0x69, 0x00, 0x01}, {0x80, 0x62, 0x6d, 0x69, 0x00, 0x02}}

// Their reservation keys.
const holderKey, otherKey = 0xb0b1, 0xb0b2

// gwReservation is a write-exclusive persistent reservation on one disk:
// nexus 0 holds it, nexus 1 is registered too.
type gwReservation struct {
	t         *testing.T
	db        *store.DB
	initiator string
	tg        core.Target
	sessions  [2]*iscsiSession // on the gateway that exported the disk when they logged in
	readRes   []byte           // PERSISTENT RESERVE IN READ RESERVATION
	readKeys  []byte           // and READ KEYS
	saved     []byte           // the state document in the database
	opened    []*iscsiSession  // every session, closed at the end of the test
}

// takeReservation registers both nexuses and reserves the disk for nexus
// 0 through owner (nexus 1 logs in at the portal and is redirected), and
// checks the reservation is enforced there.
func takeReservation(t *testing.T, db *store.DB, initiator, portal string, owner *gatewayProc, tg core.Target) *gwReservation {
	t.Helper()
	r := &gwReservation{t: t, db: db, initiator: initiator, tg: tg}
	t.Cleanup(func() {
		for _, s := range r.opened {
			s.close()
		}
	})
	r.login(owner.cfg.Gateway.Addresses[0], portal, owner)
	for _, s := range []struct {
		nexus   int
		sa, typ byte
		key     uint64
		sak     uint64
	}{
		{0, 0x00, 0, 0, holderKey},       // REGISTER
		{1, 0x00, 0, 0, otherKey},        // REGISTER
		{0, 0x01, 0x01, holderKey, 0x00}, // RESERVE, write exclusive
	} {
		cdb, param := prOutCDB(s.sa, s.typ, s.key, s.sak)
		if st, _, err := r.sessions[s.nexus].do(cdb, param, 0); err != nil || st != scsiGood {
			t.Fatalf("PERSISTENT RESERVE OUT 0x%x by nexus %d through %s: status 0x%02x, %v", s.sa, s.nexus, owner.id, st, err)
		}
	}
	r.readRes, r.readKeys = r.check(owner.id)
	r.saved = r.state()
	return r
}

// login logs both nexuses in (nexus 0 at addr0, nexus 1 at addr1), whose
// sessions must both end on gateway gw (at one of its iSCSI listeners).
func (r *gwReservation) login(addr0, addr1 string, gw *gatewayProc) {
	r.t.Helper()
	for i, addr := range []string{addr0, addr1} {
		s, err := iscsiLogin(addr, r.initiator, nexusISID[i], r.tg)
		if err != nil {
			r.t.Fatalf("nexus %d of %s: login at %s: %v", i, r.initiator, addr, err)
		}
		if !slices.Contains(gw.cfg.ISCSI.Listen, s.addr) {
			r.t.Fatalf("nexus %d of %s: logged in at %s, not on the disk's gateway %s %v", i, r.initiator, s.addr, gw.id, gw.cfg.ISCSI.Listen)
		}
		r.sessions[i] = s
		r.opened = append(r.opened, s)
	}
}

// check checks the reservation on the nexuses' gateway gw: the other
// nexus's write is a reservation conflict, the holder's is good, and
// returns what PERSISTENT RESERVE IN reports.
func (r *gwReservation) check(gw string) (readRes, readKeys []byte) {
	r.t.Helper()
	if st, err := r.sessions[1].write10(8, 0x22); err != nil || st != scsiReservationConflict {
		r.t.Fatalf("on %s, a write by the registered nexus that does not hold the write-exclusive reservation: status 0x%02x (want 0x18, reservation conflict), %v", gw, st, err)
	}
	if st, err := r.sessions[0].write10(8, 0x11); err != nil || st != scsiGood {
		r.t.Fatalf("on %s, a write by the reservation holder: status 0x%02x, %v", gw, st, err)
	}
	res, err := r.sessions[1].prIn(0x01)
	if err != nil {
		r.t.Fatalf("on %s: READ RESERVATION: %v", gw, err)
	}
	// 8 bytes of header, then the holder's key and, in byte 21, scope and type.
	if len(res) < 24 || !bytes.Equal(res[8:16], []byte{0, 0, 0, 0, 0, 0, 0xb0, 0xb1}) || res[21] != 0x01 {
		r.t.Fatalf("on %s: READ RESERVATION %x: want the holder's key %x, write exclusive", gw, res, holderKey)
	}
	keys, err := r.sessions[0].prIn(0x00)
	if err != nil {
		r.t.Fatalf("on %s: READ KEYS: %v", gw, err)
	}
	if len(keys) != 24 {
		r.t.Fatalf("on %s: READ KEYS %x: want the two registered keys", gw, keys)
	}
	return res, keys
}

// state is the disk's reservation document in the database.
func (r *gwReservation) state() []byte {
	r.t.Helper()
	b, err := r.db.LoadReservations(context.Background(), r.tg.IQN)
	if err != nil || len(b) == 0 {
		r.t.Fatalf("the reservations of %s in the database: %q, %v", r.tg.IQN, b, err)
	}
	return b
}

// holdsOn checks, after gw took the disk over, that the same nexuses
// (logging in again with their ISIDs, one at the portal) find the
// reservation as it was: same holder, key, type and generation, enforced.
// The sessions on the old gateway are kept as stale.
func (r *gwReservation) holdsOn(gw *gatewayProc, portal string) (stale [2]*iscsiSession) {
	r.t.Helper()
	stale = r.sessions
	r.login(gw.cfg.Gateway.Addresses[0], portal, gw)
	res, keys := r.check(gw.id)
	if !bytes.Equal(res, r.readRes) || !bytes.Equal(keys, r.readKeys) {
		r.t.Fatalf("after %s took the disk over: READ RESERVATION %x, READ KEYS %x; before %x, %x", gw.id, res, keys, r.readRes, r.readKeys)
	}
	if b := r.state(); !bytes.Equal(b, r.saved) {
		r.t.Fatalf("after %s took the disk over, the saved reservations changed: %s, before %s", gw.id, b, r.saved)
	}
	r.t.Logf("the write-exclusive reservation taken through the disk's gateway holds on %s after its take-over (the other nexus's write: reservation conflict; the holder's: good)", gw.id)
	return stale
}

// clearThrough queues PERSISTENT RESERVE OUT CLEAR by the holder on its
// session s to a paused gateway, to be read by clearOutcome once it has
// resumed: it must not change the survivor's reservations.
func clearThrough(t *testing.T, s *iscsiSession) {
	t.Helper()
	cdb, param := prOutCDB(0x03, 0, holderKey, 0)
	if err := s.send(cdb, param, 0); err != nil {
		t.Fatalf("CLEAR on the paused gateway's session: %v", err)
	}
}

// clearOutcome reads what the resumed gateway answered to the CLEAR, and
// checks that the reservation still holds on survivor, in its memory and
// in the database.
func (r *gwReservation) clearOutcome(s *iscsiSession, survivor *gatewayProc, portal string) {
	r.t.Helper()
	_ = s.conn.SetDeadline(time.Now().Add(30 * time.Second))
	st, _, err := s.result()
	s.close()
	if err == nil && st == scsiGood {
		r.t.Fatalf("the resumed (taken-over) gateway answered GOOD to a PERSISTENT RESERVE OUT CLEAR")
	}
	r.holdsOn(survivor, portal)
	answer := fmt.Sprintf("status 0x%02x", st)
	if err != nil {
		answer = fmt.Sprintf("none (%v)", err)
	}
	r.t.Logf("the resumed gateway's answer to a CLEAR queued while it was paused: %s; the survivor's reservation is intact, in its memory and in the database", answer)
}
