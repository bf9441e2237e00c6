package iscsi

import "encoding/binary"

// REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35), from the table of the
// commands the target supports, ours and gotgt's.

// command is one supported command (a service action of one, if sa).
type command struct {
	op    byte
	sa    uint16
	hasSA bool
	usage []byte // CDB USAGE DATA: the bits of the CDB the target reads
}

// cdbUsage is a usage map of n bytes: the opcode, then every bit of the
// middle bytes, then the CONTROL byte's NACA bit unused (0).
func cdbUsage(op byte, n int) []byte {
	u := make([]byte, n)
	u[0] = op
	for i := 1; i < n-1; i++ {
		u[i] = 0xff
	}
	return u
}

// saUsage is cdbUsage for a command with a service action in byte 1.
func saUsage(op byte, sa uint16, n int) []byte {
	u := cdbUsage(op, n)
	u[1] = byte(sa)
	return u
}

var supportedCommands = func() []command {
	var cs []command
	add := func(n int, ops ...byte) {
		for _, op := range ops {
			cs = append(cs, command{op: op, usage: cdbUsage(op, n)})
		}
	}
	addSA := func(op byte, n int, sas ...uint16) {
		for _, sa := range sas {
			cs = append(cs, command{op: op, sa: sa, hasSA: true, usage: saUsage(op, sa, n)})
		}
	}
	add(6, opTestUnitReady, opRequestSense, opRead6, opWrite6, opInquiry, opModeSelect6, opReserve6,
		opRelease6, opModeSense6, opStartStop, opPreventAllow)
	add(10, opReadCapacity10, opRead10, opWrite10, opWriteVerify10, opVerify10, opPrefetch10,
		opSyncCache10, opWriteSame10, opUnmap, opModeSelect10, opReserve10, opRelease10, opModeSense10)
	addSA(opPRIn, 10, 0, 1, 2, 3)
	addSA(opPROut, 10, prOutRegister, prOutReserve, prOutRelease, prOutClear, prOutPreempt,
		prOutPreemptAbort, prOutRegisterIgnore)
	add(16, opRead16, opCompareAndWrite, opWrite16, opOrWrite16, opWriteVerify16, opVerify16,
		opPrefetch16, opSyncCache16, opWriteSame16)
	addSA(opServiceActionIn, 16, saReadCapacity16, saGetLBAStatus)
	add(12, opReportLUNs)
	addSA(opMaintenanceIn, 12, saReportSupportedOps)
	add(12, opRead12, opWrite12, opWriteVerify12, opVerify12)
	return cs
}()

// timeoutDescriptor is the command timeouts descriptor of RCTD=1 (SPC-4
// §6.35.4): no command-specific timeouts (zero: not specified).
func timeoutDescriptor() []byte {
	d := make([]byte, 12)
	binary.BigEndian.PutUint16(d, 0x0a)
	return d
}

// reportSupportedOpcodes answers REPORT SUPPORTED OPERATION CODES: all
// commands (REPORTING OPTIONS 000b), one command without (001b) or with
// (010b) a service action, with timeout descriptors when RCTD is set.
func (u *logicalUnit) reportSupportedOpcodes(r *scsiRequest, cdb, _ []byte) (scsiResult, bool) {
	if len(cdb) < 12 {
		return u.senseResult(cdb, senseIllegalRequest, ascInvalidFieldInCDB), true
	}
	rctd, options := cdb[2]&0x80 != 0, cdb[2]&0x07
	op, sa := cdb[3], binary.BigEndian.Uint16(cdb[4:])
	alloc := uint64(binary.BigEndian.Uint32(cdb[6:]))
	var data []byte
	switch options {
	case 0:
		data = make([]byte, 4)
		for _, c := range supportedCommands {
			d := make([]byte, 8)
			d[0] = c.op
			binary.BigEndian.PutUint16(d[2:], c.sa)
			if c.hasSA {
				d[5] |= 0x01 // SERVACTV
			}
			if rctd {
				d[5] |= 0x02 // CTDP
			}
			binary.BigEndian.PutUint16(d[6:], uint16(len(c.usage)))
			data = append(data, d...)
			if rctd {
				data = append(data, timeoutDescriptor()...)
			}
		}
		binary.BigEndian.PutUint32(data, uint32(len(data)-4))
	case 1, 2:
		exists, hasSA := false, false
		var found *command
		for i, c := range supportedCommands {
			if c.op == op {
				exists, hasSA = true, hasSA || c.hasSA
				if options == 1 || c.sa == sa {
					found = &supportedCommands[i]
				}
			}
		}
		if options == 1 && hasSA || options == 2 && exists && !hasSA {
			// 001b is for commands without service actions, 010b with.
			// The field pointer names REPORTING OPTIONS (byte 2): an
			// INVALID FIELD IN CDB without one, or pointing at the service
			// action (byte 1), reads as "command not supported".
			res := u.senseResult(cdb, senseIllegalRequest, ascInvalidFieldInCDB)
			if len(res.sense) >= 18 && res.sense[0]&0x7f == 0x70 {
				res.sense[15] = 0xc0 // SKSV, C/D: a field of the CDB
				binary.BigEndian.PutUint16(res.sense[16:], 2)
			}
			return res, true
		}
		data = make([]byte, 4)
		data[1] = 0x01 // SUPPORT: not supported
		if found != nil {
			data[1] = 0x03 // supported, to the standard
			binary.BigEndian.PutUint16(data[2:], uint16(len(found.usage)))
			data = append(data, found.usage...)
		}
		if rctd {
			data[1] |= 0x80 // CTDP
			data = append(data, timeoutDescriptor()...)
		}
	default:
		return u.senseResult(cdb, senseIllegalRequest, ascInvalidFieldInCDB), true
	}
	return dataIn(r, data, alloc), true
}
