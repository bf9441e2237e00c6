package iscsi

import "encoding/binary"

// CDB parsing: every field of a command descriptor block the target reads
// itself is decoded here (SBC-4 §5, SPC-4 §6).

// Operation codes the target handles or classifies itself.
const (
	opTestUnitReady   = 0x00
	opRequestSense    = 0x03
	opRead6           = 0x08
	opWrite6          = 0x0a
	opInquiry         = 0x12
	opModeSelect6     = 0x15
	opReserve6        = 0x16
	opRelease6        = 0x17
	opModeSense6      = 0x1a
	opStartStop       = 0x1b
	opPreventAllow    = 0x1e
	opReadCapacity10  = 0x25
	opRead10          = 0x28
	opWrite10         = 0x2a
	opWriteVerify10   = 0x2e
	opVerify10        = 0x2f
	opPrefetch10      = 0x34
	opSyncCache10     = 0x35
	opWriteSame10     = 0x41
	opUnmap           = 0x42
	opModeSelect10    = 0x55
	opReserve10       = 0x56
	opRelease10       = 0x57
	opModeSense10     = 0x5a
	opPRIn            = 0x5e
	opPROut           = 0x5f
	opRead16          = 0x88
	opCompareAndWrite = 0x89
	opWrite16         = 0x8a
	opOrWrite16       = 0x8b
	opWriteVerify16   = 0x8e
	opVerify16        = 0x8f
	opPrefetch16      = 0x90
	opSyncCache16     = 0x91
	opWriteSame16     = 0x93
	opServiceActionIn = 0x9e // SERVICE ACTION IN(16)
	opReportLUNs      = 0xa0
	opMaintenanceIn   = 0xa3
	opRead12          = 0xa8
	opWrite12         = 0xaa
	opWriteVerify12   = 0xae
	opVerify12        = 0xaf

	saReadCapacity16     = 0x10 // of SERVICE ACTION IN(16)
	saGetLBAStatus       = 0x12 // of SERVICE ACTION IN(16)
	saReportSupportedOps = 0x0c // of MAINTENANCE IN
)

// serviceAction is the SERVICE ACTION field of the commands that have one.
func serviceAction(cdb []byte) uint16 {
	if len(cdb) < 2 {
		return 0
	}
	return uint16(cdb[1] & 0x1f)
}

// rwBlocks returns the transfer length in blocks of a READ/WRITE-family
// CDB, and whether the CDB is one (isWrite: it moves data to the medium).
func rwBlocks(cdb []byte) (blocks uint32, rw, isWrite bool) {
	if len(cdb) < 6 {
		return 0, false, false
	}
	switch cdb[0] {
	case opRead6, opWrite6:
		b := uint32(cdb[4])
		if b == 0 {
			b = 256
		}
		return b, true, cdb[0] == opWrite6
	case opRead10, opWrite10, opWriteVerify10:
		if len(cdb) < 10 {
			return 0, false, false
		}
		return uint32(binary.BigEndian.Uint16(cdb[7:])), true, cdb[0] != opRead10
	case opRead12, opWrite12, opWriteVerify12:
		if len(cdb) < 12 {
			return 0, false, false
		}
		return binary.BigEndian.Uint32(cdb[6:]), true, cdb[0] != opRead12
	case opRead16, opWrite16, opWriteVerify16, opOrWrite16:
		if len(cdb) < 16 {
			return 0, false, false
		}
		return binary.BigEndian.Uint32(cdb[10:]), true, cdb[0] != opRead16
	}
	return 0, false, false
}

// setRWBlocks rewrites the transfer length of a READ/WRITE CDB.
func setRWBlocks(cdb []byte, blocks uint32) {
	switch cdb[0] {
	case opRead6, opWrite6:
		cdb[4] = byte(blocks)
	case opRead10, opWrite10, opWriteVerify10:
		binary.BigEndian.PutUint16(cdb[7:], uint16(blocks))
	case opRead12, opWrite12, opWriteVerify12:
		binary.BigEndian.PutUint32(cdb[6:], blocks)
	case opRead16, opWrite16, opWriteVerify16, opOrWrite16:
		binary.BigEndian.PutUint32(cdb[10:], blocks)
	}
}

// rwLBA returns the starting LBA of a READ/WRITE-family CDB (rwBlocks
// has checked its length).
func rwLBA(cdb []byte) uint64 {
	switch cdb[0] {
	case opRead6, opWrite6:
		return uint64(cdb[1]&0x1f)<<16 | uint64(cdb[2])<<8 | uint64(cdb[3])
	case opRead10, opWrite10, opWriteVerify10, opRead12, opWrite12, opWriteVerify12:
		return uint64(binary.BigEndian.Uint32(cdb[2:]))
	default:
		return binary.BigEndian.Uint64(cdb[2:])
	}
}

// inRange reports whether blocks logical blocks from lba lie on a medium
// of end blocks; a transfer of 0 blocks needs lba itself on the medium.
// This is the one LBA range check of the target (LOGICAL BLOCK ADDRESS
// OUT OF RANGE when it fails).
func inRange(lba, blocks, end uint64) bool {
	if blocks == 0 {
		return lba < end
	}
	return lba+blocks >= lba && lba+blocks <= end
}

// writeSameCDB is a decoded WRITE SAME (10) or (16).
type writeSameCDB struct {
	lba, blocks uint64
	wrprotect   byte
	anchor      bool
	unmap       bool
	ndob        bool // no Data-Out buffer: write zeros (16 only)
	obsolete    bool // LBDATA/PBDATA (obsolete in SBC-3): refused
}

// parseWriteSame decodes a WRITE SAME CDB; ok is false if it is too short.
func parseWriteSame(cdb []byte) (ws writeSameCDB, ok bool) {
	switch {
	case cdb[0] == opWriteSame10 && len(cdb) >= 10:
		ws.lba = uint64(binary.BigEndian.Uint32(cdb[2:]))
		ws.blocks = uint64(binary.BigEndian.Uint16(cdb[7:]))
		ws.obsolete = cdb[1]&0x06 != 0
	case cdb[0] == opWriteSame16 && len(cdb) >= 16:
		ws.lba = binary.BigEndian.Uint64(cdb[2:])
		ws.blocks = uint64(binary.BigEndian.Uint32(cdb[10:]))
		ws.obsolete = cdb[1]&0x06 != 0
		ws.ndob = cdb[1]&0x01 != 0
	default:
		return ws, false
	}
	ws.wrprotect = cdb[1] >> 5
	ws.anchor = cdb[1]&0x10 != 0
	ws.unmap = cdb[1]&0x08 != 0
	return ws, true
}

// allocLength returns the ALLOCATION LENGTH of a data-in CDB, if it has
// one.
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
	case opInquiry, 0x1c: // INQUIRY, RECEIVE DIAGNOSTIC RESULTS
		return be16(3)
	case opRequestSense, opModeSense6:
		if len(cdb) < 6 {
			return 0, false
		}
		return uint64(cdb[4]), true
	case opModeSense10, 0x4d, opPRIn: // MODE SENSE(10), LOG SENSE, PERSISTENT RESERVE IN
		return be16(7)
	case opReadCapacity10:
		return 8, true
	case opServiceActionIn: // READ CAPACITY(16), GET LBA STATUS
		return be32(10)
	case opReportLUNs, opMaintenanceIn:
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
		case opInquiry:
			if cdb[1]&1 != 0 {
				return 4 + u16(2)
			}
			return 5 + uint64(buf[4])
		case opModeSense6:
			return 1 + uint64(buf[0])
		case opModeSense10:
			return 2 + u16(0)
		case opReadCapacity10:
			return 8
		case opServiceActionIn:
			if serviceAction(cdb) == saReadCapacity16 {
				return 32
			}
			return 4 + u32(0)
		case opReportLUNs:
			return 8 + u32(0)
		case opRequestSense:
			return 8 + uint64(buf[7])
		}
	}
	if resid == 0 || int(resid) > len(buf) {
		return uint64(len(buf))
	}
	return uint64(resid)
}

// decodeLUN reads a single-level LUN (peripheral or flat addressing);
// anything else maps to a LUN that does not exist.
func decodeLUN(b [8]byte) uint64 {
	for _, x := range b[2:] {
		if x != 0 {
			return 1 << 32
		}
	}
	switch b[0] >> 6 {
	case 0:
		if b[0] != 0 {
			return 1 << 32
		}
		return uint64(b[1])
	case 1:
		return uint64(b[0]&0x3f)<<8 | uint64(b[1])
	}
	return 1 << 32
}
