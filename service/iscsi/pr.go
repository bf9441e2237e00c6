package iscsi

import (
	"encoding/binary"
	"slices"
)

// Persistent reservations (SPC-4 §5.13, PERSISTENT RESERVE IN/OUT §6.15,
// §6.16): the service actions REGISTER, REGISTER AND IGNORE EXISTING KEY,
// RESERVE, RELEASE, CLEAR, PREEMPT and PREEMPT AND ABORT; READ KEYS, READ
// RESERVATION, REPORT CAPABILITIES and READ FULL STATUS. Not supported,
// and refused with INVALID FIELD: REGISTER AND MOVE, SPEC_I_PT, ALL_TG_PT
// (one target port) and scopes other than the logical unit.

// Persistent reservation types.
const (
	prWriteExclusive = 1
	prExclusiveAcc   = 3
	prWERegOnly      = 5
	prEARegOnly      = 6
	prWEAllReg       = 7
	prEAAllReg       = 8
)

// PERSISTENT RESERVE OUT service actions.
const (
	prOutRegister       = 0
	prOutReserve        = 1
	prOutRelease        = 2
	prOutClear          = 3
	prOutPreempt        = 4
	prOutPreemptAbort   = 5
	prOutRegisterIgnore = 6
)

// prOutParamLen is the parameter list length of every service action we
// support (SPC-4 §6.16.3).
const prOutParamLen = 24

func validPRType(t byte) bool {
	switch t {
	case prWriteExclusive, prExclusiveAcc, prWERegOnly, prEARegOnly, prWEAllReg, prEAAllReg:
		return true
	}
	return false
}

// persistentReserveIn answers PERSISTENT RESERVE IN.
func (u *logicalUnit) persistentReserveIn(r *scsiRequest, cdb, _ []byte) (scsiResult, bool) {
	if len(cdb) < 10 {
		return u.senseResult(cdb, senseIllegalRequest, ascInvalidFieldInCDB), true
	}
	st := &u.res.st
	alloc := uint64(binary.BigEndian.Uint16(cdb[7:]))
	var data []byte
	switch cdb[1] & 0x1f {
	case 0: // READ KEYS
		data = make([]byte, 8, 8+8*len(st.Regs))
		for _, reg := range st.Regs {
			data = binary.BigEndian.AppendUint64(data, reg.Key)
		}
	case 1: // READ RESERVATION
		data = make([]byte, 8)
		if st.Type != 0 {
			d := make([]byte, 16)
			if !st.allRegistrants() {
				k, _ := st.key(st.Holder)
				binary.BigEndian.PutUint64(d, k)
			}
			d[13] = st.Type // scope 0: the logical unit
			data = append(data, d...)
		}
	case 2: // REPORT CAPABILITIES
		data = make([]byte, 8)
		binary.BigEndian.PutUint16(data, 8)
		data[2] = 0x01 // PTPL_C: the state persists (in bmid's state store)
		data[3] = 0x80 // TMV: the type mask is valid; ALLOW COMMANDS 0
		if st.APTPL {
			data[3] |= 0x01
		}
		data[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02 // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
		data[5] = 0x01                             // EX_AC_AR
		return dataIn(r, data, alloc), true
	case 3: // READ FULL STATUS
		data = make([]byte, 8)
		for _, reg := range st.Regs {
			d := make([]byte, 24)
			binary.BigEndian.PutUint64(d, reg.Key)
			if st.holds(reg.Port) {
				d[12] = 0x01 // R_HOLDER
				d[13] = st.Type
			}
			binary.BigEndian.PutUint16(d[18:], 1) // relative target port 1
			tid := transportID(reg.Port)
			binary.BigEndian.PutUint32(d[20:], uint32(len(tid)))
			data = append(append(data, d...), tid...)
		}
	default:
		return u.senseResult(cdb, senseIllegalRequest, ascInvalidFieldInCDB), true
	}
	binary.BigEndian.PutUint32(data, st.Generation)
	binary.BigEndian.PutUint32(data[4:], uint32(len(data)-8))
	return dataIn(r, data, alloc), true
}

// transportID is the iSCSI TransportID of an initiator port (SPC-4
// §7.6.4.6, format 01b: the name with its ISID), NUL-padded to 4 bytes.
func transportID(port string) []byte {
	n := (len(port) + 1 + 3) &^ 3
	b := make([]byte, 4+n)
	b[0] = 0x40 | 0x05
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	copy(b[4:], port)
	return b
}

// persistentReserveOut answers PERSISTENT RESERVE OUT.
func (u *logicalUnit) persistentReserveOut(r *scsiRequest, cdb, out []byte) (scsiResult, bool) {
	bad := func(asc uint16) (scsiResult, bool) { return u.senseResult(cdb, senseIllegalRequest, asc), true }
	conflict := scsiResult{status: statusReservationConflict}
	if len(cdb) < 10 {
		return bad(ascInvalidFieldInCDB)
	}
	sa, scope, typ := cdb[1]&0x1f, cdb[2]>>4, cdb[2]&0x0f
	if sa > prOutRegisterIgnore {
		return bad(ascInvalidFieldInCDB) // REGISTER AND MOVE and beyond
	}
	if binary.BigEndian.Uint32(cdb[5:]) != prOutParamLen || len(out) < prOutParamLen {
		return bad(ascParamListLength)
	}
	key, saKey := binary.BigEndian.Uint64(out), binary.BigEndian.Uint64(out[8:])
	if out[20]&0x0c != 0 { // SPEC_I_PT, ALL_TG_PT
		return bad(ascInvalidFieldInParams)
	}
	switch sa {
	case prOutReserve, prOutRelease, prOutPreempt, prOutPreemptAbort:
		if scope != 0 || !validPRType(typ) {
			return bad(ascInvalidFieldInCDB)
		}
	}
	port := r.nexus.port()
	st := &u.res.st
	next := st.clone()
	mine, registered := st.key(port)
	if sa != prOutRegisterIgnore && (!registered && (sa != prOutRegister || key != 0) || registered && key != mine) {
		// not registered, or the wrong key (SPC-4 §5.13.7, table 69 ff.)
		return conflict, true
	}
	switch sa {
	case prOutRegister, prOutRegisterIgnore:
		if saKey == 0 {
			if !registered {
				return scsiResult{status: statusGood}, true
			}
			next.unregister(port)
		} else if registered {
			i := slices.IndexFunc(next.Regs, func(g registration) bool { return g.Port == port })
			next.Regs[i].Key = saKey
		} else {
			next.Regs = append(next.Regs, registration{Port: port, Key: saKey})
		}
		next.APTPL = out[20]&0x01 != 0
		next.Generation++
	case prOutReserve:
		if st.Type != 0 {
			if st.holds(port) && st.Type == typ {
				return scsiResult{status: statusGood}, true
			}
			return conflict, true
		}
		next.Type, next.Holder = typ, port
	case prOutRelease:
		if st.Type == 0 || !st.holds(port) {
			return scsiResult{status: statusGood}, true
		}
		if st.Type != typ {
			return bad(ascInvalidReleaseOfPR)
		}
		next.Type, next.Holder = 0, ""
	case prOutClear:
		next = prState{Generation: st.Generation + 1, Reserved: st.Reserved}
	case prOutPreempt, prOutPreemptAbort:
		res, ok := preempt(&next, port, saKey, typ)
		if !ok {
			return res, true
		}
		if res.status != statusGood {
			return u.senseResult(cdb, senseIllegalRequest, ascInvalidFieldInParams), true
		}
	}
	if err := u.res.commit(next); err != nil {
		u.log.Error("iscsi persistent reservation not saved", "iqn", u.res.iqn, "err", err)
		return u.senseResult(cdb, senseHardwareError, ascInternalTargetFailure), true
	}
	return scsiResult{status: statusGood}, true
}

// preempt applies PREEMPT (SPC-4 §5.13.11.4) to st for port. It returns
// ok false with the answer when nothing is preempted (RESERVATION
// CONFLICT), and a non-GOOD status for a SERVICE ACTION RESERVATION KEY of
// 0 where the spec forbids it (INVALID FIELD IN PARAMETER LIST).
func preempt(st *prState, port string, saKey uint64, typ byte) (scsiResult, bool) {
	remove := func(keep func(registration) bool) int {
		n := len(st.Regs)
		st.Regs = slices.DeleteFunc(st.Regs, func(g registration) bool { return g.Port != port && !keep(g) })
		return n - len(st.Regs)
	}
	byKey := func(g registration) bool { return g.Key != saKey }
	switch {
	case st.Type != 0 && st.allRegistrants() && saKey == 0:
		remove(func(registration) bool { return false })
		st.Type, st.Holder = typ, port
	case st.Type != 0 && st.allRegistrants():
		if remove(byKey) == 0 {
			return scsiResult{status: statusReservationConflict}, false
		}
	case st.Type != 0:
		holderKey, _ := st.key(st.Holder)
		if saKey == holderKey {
			remove(byKey)
			st.Type, st.Holder = typ, port
			break
		}
		if saKey == 0 {
			return scsiResult{status: statusCheckCondition}, true
		}
		if remove(byKey) == 0 {
			return scsiResult{status: statusReservationConflict}, false
		}
	default:
		if saKey == 0 {
			return scsiResult{status: statusCheckCondition}, true
		}
		if remove(byKey) == 0 {
			return scsiResult{status: statusReservationConflict}, false
		}
	}
	st.Generation++
	return scsiResult{status: statusGood}, true
}
