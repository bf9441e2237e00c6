package iscsi

import "encoding/binary"

// allocLength returns the ALLOCATION LENGTH of a data-in CDB gotgt
// answers, if it has one.
func allocLength(cdb []byte) (uint64, bool) {
	be16 := func(o int) (uint64, bool) {
		if len(cdb) < o+2 {
			return 0, false
		}
		return uint64(binary.BigEndian.Uint16(cdb[o:])), true
	}
	be32 := func(o int) (uint64, bool) {
		if len(cdb) < o+4 {
			return 0, false
		}
		return uint64(binary.BigEndian.Uint32(cdb[o:])), true
	}
	switch cdb[0] {
	case 0x12, 0x1c: // INQUIRY, RECEIVE DIAGNOSTIC RESULTS
		return be16(3)
	case 0x03, 0x1a: // REQUEST SENSE, MODE SENSE(6)
		if len(cdb) < 6 {
			return 0, false
		}
		return uint64(cdb[4]), true
	case 0x5a, 0x4d, 0x5e: // MODE SENSE(10), LOG SENSE, PERSISTENT RESERVE IN
		return be16(7)
	case 0x25: // READ CAPACITY(10)
		return 8, true
	case 0x9e: // SERVICE ACTION IN(16): READ CAPACITY(16), GET LBA STATUS
		return be32(10)
	case 0xa0, 0xa3: // REPORT LUNS, MAINTENANCE IN
		return be32(6)
	}
	return 0, false
}

// responseLength is the length of the answer gotgt built in buf, read
// from the answer's own header where the format has one; otherwise gotgt's
// Resid (which holds the answer length, when set).
func responseLength(cdb, buf []byte, resid uint32) uint64 {
	u16 := func(o int) uint64 { return uint64(binary.BigEndian.Uint16(buf[o:])) }
	u32 := func(o int) uint64 { return uint64(binary.BigEndian.Uint32(buf[o:])) }
	if len(buf) >= 8 {
		switch cdb[0] {
		case 0x12: // INQUIRY
			if cdb[1]&1 != 0 {
				return 4 + u16(2)
			}
			return 5 + uint64(buf[4])
		case 0x1a:
			return 1 + uint64(buf[0])
		case 0x5a:
			return 2 + u16(0)
		case 0x25:
			return 8
		case 0x9e:
			if cdb[1]&0x1f == 0x10 {
				return 32
			}
			return 4 + u32(0)
		case 0xa0:
			return 8 + u32(0)
		case 0x03:
			return 8 + uint64(buf[7])
		}
	}
	if resid == 0 || int(resid) > len(buf) {
		return uint64(len(buf))
	}
	return uint64(resid)
}
