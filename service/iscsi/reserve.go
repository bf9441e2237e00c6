package iscsi

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Reservations: SPC-2 RESERVE/RELEASE and SPC-3 persistent reservations
// (pr.go) of one LU, keyed by I_T nexus: the initiator port name
// "<initiator iqn>,i,0x<isid>" (RFC 7143 §4.4.2), which a session
// reinstated with the same ISID keeps. Every change is written to the
// ReservationStore before the command is answered, so the state survives
// a restart of bmid: the LU loads it when it is exported again.
//
// SPC-2 reservations end with their I_T nexus (logout, a dropped
// connection, session reinstatement) and with a LUN reset, as SPC-2
// requires, but not when the target stops (a restart of bmid is not a
// nexus loss for the initiators, which log in again). Persistent
// reservations end only by PERSISTENT RESERVE OUT or when the disk is
// deprovisioned (Target.ReleaseReservations, or the store forgetting the
// target's row).

// ReservationStore keeps the SCSI reservation state of exported targets
// across restarts (service/store's SQLite implements it). The state is an
// opaque document of this package.
type ReservationStore interface {
	// LoadReservations returns the state saved for the target iqn, or nil
	// if there is none.
	LoadReservations(ctx context.Context, iqn string) ([]byte, error)
	// SaveReservations replaces the state saved for iqn.
	SaveReservations(ctx context.Context, iqn string, state []byte) error
	// DeleteReservations forgets iqn's state; a missing one is not an error.
	DeleteReservations(ctx context.Context, iqn string) error
}

// storeTimeout bounds one load or save of the reservation state.
const storeTimeout = 10 * time.Second

// registration is one registered I_T nexus and its reservation key.
type registration struct {
	Port string `json:"port"`
	Key  uint64 `json:"key"`
}

// prState is the reservation state of an LU, as saved.
type prState struct {
	Generation uint32         `json:"generation"`
	Regs       []registration `json:"registrations,omitempty"`
	Holder     string         `json:"holder,omitempty"` // holder of a single-holder persistent reservation
	Type       byte           `json:"type,omitempty"`   // persistent reservation type; 0: none
	APTPL      bool           `json:"aptpl,omitempty"`
	Reserved   string         `json:"reserved,omitempty"` // holder of an SPC-2 reservation
}

func (s prState) clone() prState {
	s.Regs = slices.Clone(s.Regs)
	return s
}

// key returns port's registered key.
func (s *prState) key(port string) (uint64, bool) {
	for _, r := range s.Regs {
		if r.Port == port {
			return r.Key, true
		}
	}
	return 0, false
}

// allRegistrants reports whether the reservation type makes every
// registrant a holder.
func (s *prState) allRegistrants() bool { return s.Type == prWEAllReg || s.Type == prEAAllReg }

// holds reports whether port holds the persistent reservation.
func (s *prState) holds(port string) bool {
	if s.Type == 0 {
		return false
	}
	switch s.Type {
	case prWERegOnly, prEARegOnly, prWEAllReg, prEAAllReg:
		_, ok := s.key(port)
		return ok
	}
	return s.Holder == port
}

// unregister removes port's registration, and the reservation it held.
func (s *prState) unregister(port string) {
	s.Regs = slices.DeleteFunc(s.Regs, func(r registration) bool { return r.Port == port })
	switch {
	case s.Type == 0:
	case s.allRegistrants():
		if len(s.Regs) == 0 {
			s.Type, s.Holder = 0, ""
		}
	case s.Holder == port:
		// SPC-4 §5.13.11.2.4: for the registrants-only types, the
		// reservation ends with its holder's registration.
		s.Type, s.Holder = 0, ""
	}
}

// reservations is an LU's reservation state; the LU's mu guards it
// (conflicts under a read lock, changes under the write lock).
type reservations struct {
	iqn   string
	store ReservationStore // nil: kept in memory only
	st    prState
}

// loadReservations reads iqn's saved state.
func loadReservations(ctx context.Context, iqn string, store ReservationStore) (*reservations, error) {
	r := &reservations{iqn: iqn, store: store}
	if store == nil {
		return r, nil
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	b, err := store.LoadReservations(ctx, iqn)
	if err != nil {
		return nil, fmt.Errorf("load the reservations of %s: %w", iqn, err)
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &r.st); err != nil {
			return nil, fmt.Errorf("the saved reservations of %s: %w", iqn, err)
		}
	}
	return r, nil
}

// commit saves next and makes it the state; on error nothing changes.
func (r *reservations) commit(next prState) error {
	if r.store != nil {
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		if err := r.store.SaveReservations(ctx, r.iqn, b); err != nil {
			return fmt.Errorf("save the reservations of %s: %w", r.iqn, err)
		}
	}
	r.st = next
	return nil
}

// port is the initiator port name of an I_T nexus ("" for none, the
// engine's own tests).
func (nx *nexus) port() string {
	if nx == nil {
		return ""
	}
	return nx.itn.Tag
}

// spc2Allowed are the commands another I_T nexus may send while an SPC-2
// reservation is held (SPC-2 §5.5.1, table 10).
var spc2Allowed = map[byte]bool{
	opInquiry: true, opRequestSense: true, opReportLUNs: true,
	opRelease6: true, opRelease10: true, opMaintenanceIn: true,
}

// prAllowed are the commands a persistent reservation never conflicts with
// (SPC-4 §5.13.1, table 66); PERSISTENT RESERVE IN/OUT check their own rules.
var prAllowed = map[byte]bool{
	opInquiry: true, opRequestSense: true, opReportLUNs: true, opTestUnitReady: true,
	opReadCapacity10: true, opMaintenanceIn: true, opPRIn: true, opPROut: true, 0x4d: true, // LOG SENSE
}

// prWriteOps are the commands a write-exclusive reservation refuses to
// nexuses that do not hold it: everything that changes the medium or the
// LU's state.
var prWriteOps = map[byte]bool{
	opWrite6: true, opWrite10: true, 0xaa: true, opWrite16: true,
	opWriteVerify10: true, opWriteVerify12: true, opWriteVerify16: true,
	opWriteSame10: true, opWriteSame16: true, opUnmap: true, opCompareAndWrite: true, opOrWrite16: true,
	opSyncCache10: true, opSyncCache16: true, opModeSelect6: true, opModeSelect10: true,
	0x04:        true, // FORMAT UNIT
	0x48:        true, // SANITIZE
	0x83:        true, // EXTENDED COPY
	opStartStop: true, opPreventAllow: true,
	opReserve6: true, opReserve10: true, opRelease6: true, opRelease10: true,
}

// conflicts reports whether the reservations refuse cdb from nx
// (RESERVATION CONFLICT). The caller holds the LU's mu.
func (r *reservations) conflicts(nx *nexus, cdb []byte) bool {
	port := nx.port()
	st := &r.st
	if st.Reserved != "" && st.Reserved != port && !spc2Allowed[cdb[0]] {
		return true
	}
	if st.Type == 0 || st.holds(port) || prAllowed[cdb[0]] {
		return false
	}
	if cdb[0] == opServiceActionIn && serviceAction(cdb) == saReadCapacity16 {
		return false
	}
	switch st.Type {
	case prWriteExclusive, prWERegOnly, prWEAllReg:
		return prWriteOps[cdb[0]]
	}
	return true // the exclusive-access types
}

// reserveRelease answers SPC-2 RESERVE(6)/(10) and RELEASE(6)/(10).
func (u *logicalUnit) reserveRelease(r *scsiRequest, cdb, _ []byte) (scsiResult, bool) {
	st := &u.res.st
	if len(st.Regs) > 0 || st.Type != 0 {
		// SPC-3 §5.6.3: while persistent registrations exist, RESERVE and
		// RELEASE are refused.
		return scsiResult{status: statusReservationConflict}, true
	}
	if (cdb[0] == opReserve10 || cdb[0] == opRelease10) && len(cdb) > 1 && cdb[1]&0x12 != 0 {
		// third-party reservations (3RDPTY, LONGID) are not supported
		return u.senseResult(cdb, senseIllegalRequest, ascInvalidFieldInCDB), true
	}
	port := r.nexus.port()
	next := st.clone()
	switch cdb[0] {
	case opReserve6, opReserve10:
		if st.Reserved != "" && st.Reserved != port {
			return scsiResult{status: statusReservationConflict}, true
		}
		next.Reserved = port
	default:
		if st.Reserved != port {
			return scsiResult{status: statusGood}, true // releasing what one does not hold does nothing
		}
		next.Reserved = ""
	}
	if next.Reserved == st.Reserved {
		return scsiResult{status: statusGood}, true
	}
	if err := u.res.commit(next); err != nil {
		u.log.Error("iscsi reservation not saved", "iqn", u.res.iqn, "err", err)
		return u.senseResult(cdb, senseHardwareError, ascInternalTargetFailure), true
	}
	return scsiResult{status: statusGood}, true
}

// nexusLost ends the SPC-2 reservation nx held: its session ended other
// than by the target stopping (SAM-5 §6.3.4, I_T nexus loss).
func (u *logicalUnit) nexusLost(nx *nexus) {
	u.releaseSPC2(func(holder string) bool { return holder == nx.port() })
}

// lunReset applies a LOGICAL UNIT RESET: it ends the SPC-2 reservation
// (persistent reservations stay) and gives every I_T nexus a UNIT
// ATTENTION.
func (u *logicalUnit) lunReset() {
	u.releaseSPC2(func(string) bool { return true })
	u.resets.Add(1)
}

func (u *logicalUnit) releaseSPC2(match func(holder string) bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.res.st.Reserved == "" || !match(u.res.st.Reserved) {
		return
	}
	next := u.res.st.clone()
	next.Reserved = ""
	if err := u.res.commit(next); err != nil {
		u.log.Error("iscsi reservation release not saved", "iqn", u.res.iqn, "err", err)
		u.res.st.Reserved = "" // the nexus is gone in any case
	}
}

// forget drops every reservation (the disk is deprovisioned).
func (r *reservations) forget(ctx context.Context) error {
	r.st = prState{}
	if r.store == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return r.store.DeleteReservations(ctx, r.iqn)
}
