package iscsi

import (
	"encoding/binary"
	"io"
)

// The commands the target implements itself rather than through gotgt's
// engine, where gotgt's are missing or wrong: WRITE SAME (gotgt's
// answered GOOD and wrote nothing), COMPARE AND WRITE (gotgt's wrote
// without comparing), UNMAP (gotgt's checked no limits), ORWRITE, GET LBA STATUS, the Block
// Limits, Block Device Characteristics and Logical Block Provisioning VPD
// pages, REPORT SUPPORTED OPERATION CODES (opcodes.go) and the
// reservations (reserve.go, pr.go).

// ownOpFunc runs one command; the caller holds u.mu (exclusively for
// exclusiveOps). ok false hands the command to gotgt's engine.
type ownOpFunc func(u *logicalUnit, r *scsiRequest, cdb, out []byte) (res scsiResult, ok bool)

// ownOp returns our implementation of cdb's command, or nil.
func ownOp(cdb []byte) ownOpFunc {
	switch cdb[0] {
	case opWriteSame10, opWriteSame16:
		return (*logicalUnit).writeSame
	case opOrWrite16:
		return (*logicalUnit).orWrite
	case opCompareAndWrite:
		return (*logicalUnit).compareAndWrite
	case opUnmap:
		return (*logicalUnit).unmap
	case opInquiry:
		return (*logicalUnit).inquiryVPD
	case opServiceActionIn:
		if serviceAction(cdb) == saGetLBAStatus {
			return (*logicalUnit).getLBAStatus
		}
	case opMaintenanceIn:
		if serviceAction(cdb) == saReportSupportedOps {
			return (*logicalUnit).reportSupportedOpcodes
		}
	case opReserve6, opReserve10, opRelease6, opRelease10:
		return (*logicalUnit).reserveRelease
	case opPRIn:
		return (*logicalUnit).persistentReserveIn
	case opPROut:
		return (*logicalUnit).persistentReserveOut
	}
	return nil
}

// The limits advertised in the Block Limits VPD page.
const (
	// maxWriteSameBlocks is the MAXIMUM WRITE SAME LENGTH: as for every
	// other command, at most maxTransfer per command (it holds a worker).
	maxWriteSameBlocks = maxTransfer >> blockShift
	// maxUnmapBlocks and maxUnmapDescriptors bound one UNMAP.
	maxUnmapBlocks = 0xffffffff
	// maxCompareAndWrite is the MAXIMUM COMPARE AND WRITE LENGTH in blocks.
	maxCompareAndWrite  = 255
	maxUnmapDescriptors = 16
	// fillChunk is the buffer WRITE SAME writes through when the volume
	// has no write-same or write-zeroes of its own.
	fillChunk = 1 << 20
)

// dataIn answers GOOD with data cut to the allocation length and the
// EDTL, with the residual of RFC 7143 §11.4.5.
func dataIn(r *scsiRequest, data []byte, alloc uint64) scsiResult {
	actual := min(uint64(len(data)), alloc)
	res := scsiResult{status: statusGood}
	edtl := uint64(r.edtl)
	if !r.read {
		edtl = 0
	}
	res.data = data[:min(actual, edtl)]
	switch {
	case actual < edtl:
		res.underflow, res.residual = true, uint32(edtl-actual)
	case actual > edtl:
		res.overflow, res.residual = true, uint32(actual-edtl)
	}
	return res
}

// writeProtected reports whether the LU refuses writes.
func (u *logicalUnit) writeProtected() bool { return u.lu.Attrs.Readonly || u.lu.Attrs.SWP }

// sameWriter is a Volume that writes one block's pattern over a range
// itself (service/ceph's *Image, with librbd's rbd_writesame).
type sameWriter interface {
	WriteSame(block []byte, off, n uint64) error
}

// zeroWriter is a Volume that zeroes a range itself, deallocating what it
// can (service/ceph's *Image, with librbd's rbd_write_zeroes).
type zeroWriter interface {
	WriteZeroes(off, n uint64) error
}

// writeSame answers WRITE SAME (10) and (16), with or without UNMAP: it
// writes the Data-Out block (zeros with NDOB) to every block of the range.
// UNMAP=1 lets the target deallocate: all-zero data goes to the volume's
// write-zeroes, which deallocates whole objects and zeroes the rest, so
// the blocks read back as written whatever the volume does; other data
// is written as such (SBC-4 §5.50: the device server may write instead of
// unmapping).
func (u *logicalUnit) writeSame(r *scsiRequest, cdb, out []byte) (scsiResult, bool) {
	bad := func(key byte, asc uint16) (scsiResult, bool) { return u.senseResult(cdb, key, asc), true }
	ws, ok := parseWriteSame(cdb)
	if !ok || ws.wrprotect != 0 || ws.anchor || ws.obsolete {
		// no protection information; ANC_SUP is 0; LBDATA/PBDATA obsolete
		return bad(senseIllegalRequest, ascInvalidFieldInCDB)
	}
	end := u.lu.Size >> blockShift
	if ws.lba >= end {
		return bad(senseIllegalRequest, ascLBAOutOfRange)
	}
	n := ws.blocks
	if n == 0 { // WSNZ is 0: to the end of the medium
		n = end - ws.lba
	}
	if !inRange(ws.lba, n, end) {
		return bad(senseIllegalRequest, ascLBAOutOfRange)
	}
	if n > maxWriteSameBlocks {
		return bad(senseIllegalRequest, ascInvalidFieldInCDB)
	}
	const bs = 1 << blockShift
	block := make([]byte, bs)
	if ws.ndob {
		if r.edtl != 0 {
			return bad(senseIllegalRequest, ascInvalidFieldInCDB)
		}
	} else {
		if !r.write || r.edtl != bs || len(out) != bs {
			// the Data-Out buffer is exactly one logical block
			res := u.senseResult(cdb, senseIllegalRequest, ascInvalidFieldInCDB)
			if r.edtl < bs {
				res.underflow, res.residual = true, bs-r.edtl
			} else {
				res.overflow, res.residual = true, r.edtl-bs
			}
			return res, true
		}
		copy(block, out)
	}
	if u.writeProtected() {
		return bad(senseDataProtect, ascWriteProtected)
	}
	if err := u.fill(block, ws.lba<<blockShift, n<<blockShift); err != nil {
		u.log.Warn("iscsi WRITE SAME failed", "iqn", u.res.iqn, "lba", ws.lba, "blocks", n, "err", err)
		return bad(senseMediumError, ascWriteError)
	}
	return scsiResult{status: statusGood}, true
}

// fill writes block over n bytes at off (n a multiple of its length).
func (u *logicalUnit) fill(block []byte, off, n uint64) error {
	zero := true
	for _, b := range block {
		if b != 0 {
			zero = false
			break
		}
	}
	if z, ok := u.vol.(zeroWriter); ok && zero {
		return z.WriteZeroes(off, n)
	}
	if s, ok := u.vol.(sameWriter); ok {
		return s.WriteSame(block, off, n)
	}
	buf := make([]byte, min(n, fillChunk))
	for i := 0; i < len(buf); i += len(block) {
		copy(buf[i:], block)
	}
	for done := uint64(0); done < n; {
		k := min(uint64(len(buf)), n-done)
		if _, err := u.vol.WriteAt(buf[:k], int64(off+done)); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// orWrite answers ORWRITE (16): each block becomes its old data OR the
// Data-Out's, atomically for the target's other commands (it runs under
// the LU's exclusive lock). execute has checked the range and cut the
// Data-Out to the CDB's blocks.
func (u *logicalUnit) orWrite(_ *scsiRequest, cdb, out []byte) (scsiResult, bool) {
	blocks, rw, _ := rwBlocks(cdb)
	if !rw || cdb[1]&0xe0 != 0 { // ORPROTECT: no protection information
		return u.senseResult(cdb, senseIllegalRequest, ascInvalidFieldInCDB), true
	}
	n := min(uint64(len(out)), uint64(blocks)<<blockShift)
	if n == 0 {
		return scsiResult{status: statusGood}, true
	}
	if u.writeProtected() {
		return u.senseResult(cdb, senseDataProtect, ascWriteProtected), true
	}
	off := int64(rwLBA(cdb) << blockShift)
	buf := make([]byte, n)
	got, err := u.vol.ReadAt(buf, off)
	if err == io.EOF && uint64(got) == n {
		err = nil
	}
	if err != nil || uint64(got) != n {
		return u.senseResult(cdb, senseMediumError, ascReadError), true
	}
	for i := range buf {
		buf[i] |= out[i]
	}
	if _, err := u.vol.WriteAt(buf, off); err != nil {
		return u.senseResult(cdb, senseMediumError, ascWriteError), true
	}
	return scsiResult{status: statusGood}, true
}

// getLBAStatus answers GET LBA STATUS with one descriptor from the
// requested LBA to the end (at most 2^32-1 blocks): "mapped or unknown"
// (SBC-4 §5.6, provisioning status 0), the one answer that is true
// whatever the volume has allocated.
func (u *logicalUnit) getLBAStatus(r *scsiRequest, cdb, _ []byte) (scsiResult, bool) {
	if len(cdb) < 16 {
		return u.senseResult(cdb, senseIllegalRequest, ascInvalidFieldInCDB), true
	}
	lba, end := binary.BigEndian.Uint64(cdb[2:]), u.lu.Size>>blockShift
	if !inRange(lba, 0, end) {
		return u.senseResult(cdb, senseIllegalRequest, ascLBAOutOfRange), true
	}
	data := make([]byte, 24)
	binary.BigEndian.PutUint32(data, 20)
	binary.BigEndian.PutUint64(data[8:], lba)
	binary.BigEndian.PutUint32(data[16:], uint32(min(end-lba, 0xffffffff)))
	return dataIn(r, data, uint64(binary.BigEndian.Uint32(cdb[10:]))), true
}

// vpdPages are the VPD pages INQUIRY returns, in ascending order: gotgt
// builds 0x80 and 0x83, we build the others.
var vpdPages = []byte{0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}

// inquiryVPD answers INQUIRY for the VPD pages we build.
func (u *logicalUnit) inquiryVPD(r *scsiRequest, cdb, _ []byte) (scsiResult, bool) {
	if len(cdb) < 6 || cdb[1]&0x01 == 0 {
		return scsiResult{}, false
	}
	var page []byte
	switch cdb[2] {
	case 0x00: // Supported VPD Pages
		page = append([]byte{0, 0x00, 0, byte(len(vpdPages))}, vpdPages...)
	case 0xb0: // Block Limits (SBC-4 §6.6.4)
		page = make([]byte, 64)
		page[1], page[3] = 0xb0, 0x3c
		page[5] = maxCompareAndWrite
		binary.BigEndian.PutUint16(page[6:], 4096>>blockShift) // OPTIMAL TRANSFER LENGTH GRANULARITY
		binary.BigEndian.PutUint32(page[8:], maxTransfer>>blockShift)
		binary.BigEndian.PutUint32(page[20:], maxUnmapBlocks)
		binary.BigEndian.PutUint32(page[24:], maxUnmapDescriptors)
		binary.BigEndian.PutUint64(page[36:], maxWriteSameBlocks)
	case 0xb1: // Block Device Characteristics (SBC-4 §6.6.2)
		page = make([]byte, 64)
		page[1], page[3] = 0xb1, 0x3c
		binary.BigEndian.PutUint16(page[4:], 1) // MEDIUM ROTATION RATE: non-rotating
	case 0xb2: // Logical Block Provisioning (SBC-4 §6.6.6)
		page = make([]byte, 8)
		page[1], page[3] = 0xb2, 4
		page[5] = 0x80 | 0x40 | 0x20 // LBPU, LBPWS, LBPWS10; LBPRZ 0, ANC_SUP 0
		page[6] = 0x02               // PROVISIONING TYPE: thin
	default:
		return scsiResult{}, false
	}
	page[0] = byte(u.lu.Attrs.DeviceType)
	return dataIn(r, page, uint64(binary.BigEndian.Uint16(cdb[3:]))), true
}

// unmap answers UNMAP (SBC-4 §5.32): it checks every block descriptor
// against the Block Limits and the capacity before it discards anything.
// The volume's discard may leave unaligned pieces as they were (LBPRZ is
// 0: unmapped blocks read back undefined).
func (u *logicalUnit) unmap(r *scsiRequest, cdb, out []byte) (scsiResult, bool) {
	bad := func(key byte, asc uint16) (scsiResult, bool) { return u.senseResult(cdb, key, asc), true }
	if len(cdb) < 10 || cdb[1]&0x01 != 0 { // ANCHOR: ANC_SUP is 0
		return bad(senseIllegalRequest, ascInvalidFieldInCDB)
	}
	plen := int(binary.BigEndian.Uint16(cdb[7:]))
	if plen == 0 {
		return scsiResult{status: statusGood}, true
	}
	if plen < 8 || len(out) < plen {
		return bad(senseIllegalRequest, ascParamListLength)
	}
	dlen := int(binary.BigEndian.Uint16(out[2:]))
	if 8+dlen > plen || dlen%16 != 0 {
		return bad(senseIllegalRequest, ascParamListLength)
	}
	if dlen/16 > maxUnmapDescriptors {
		return bad(senseIllegalRequest, ascInvalidFieldInParams)
	}
	end := u.lu.Size >> blockShift
	var total uint64
	for d := out[8 : 8+dlen]; len(d) >= 16; d = d[16:] {
		lba, n := binary.BigEndian.Uint64(d), uint64(binary.BigEndian.Uint32(d[8:]))
		if n > 0 && !inRange(lba, n, end) {
			return bad(senseIllegalRequest, ascLBAOutOfRange)
		}
		total += n
	}
	if total > maxUnmapBlocks {
		return bad(senseIllegalRequest, ascInvalidFieldInParams)
	}
	if u.writeProtected() {
		return bad(senseDataProtect, ascWriteProtected)
	}
	for d := out[8 : 8+dlen]; len(d) >= 16; d = d[16:] {
		lba, n := binary.BigEndian.Uint64(d), uint64(binary.BigEndian.Uint32(d[8:]))
		if n == 0 {
			continue
		}
		if err := u.vol.Discard(lba<<blockShift, n<<blockShift); err != nil {
			u.log.Warn("iscsi UNMAP failed", "iqn", u.res.iqn, "lba", lba, "blocks", n, "err", err)
			return bad(senseMediumError, ascWriteError)
		}
	}
	return scsiResult{status: statusGood}, true
}

// compareAndWrite answers COMPARE AND WRITE (SBC-4 §5.3): if the blocks
// hold the first half of the Data-Out, they get the second half; else
// MISCOMPARE with the offset of the first differing byte, and nothing is
// written. It runs under the LU's exclusive lock, so the compare and the
// write are atomic for the target's other commands.
func (u *logicalUnit) compareAndWrite(r *scsiRequest, cdb, out []byte) (scsiResult, bool) {
	bad := func(key byte, asc uint16) (scsiResult, bool) { return u.senseResult(cdb, key, asc), true }
	if len(cdb) < 16 || cdb[1]&0xe0 != 0 { // WRPROTECT: no protection information
		return bad(senseIllegalRequest, ascInvalidFieldInCDB)
	}
	lba, blocks := binary.BigEndian.Uint64(cdb[2:]), uint64(cdb[13])
	if !inRange(lba, blocks, u.lu.Size>>blockShift) {
		return bad(senseIllegalRequest, ascLBAOutOfRange)
	}
	if blocks > maxCompareAndWrite {
		return bad(senseIllegalRequest, ascInvalidFieldInCDB)
	}
	n := blocks << blockShift
	if uint64(r.edtl) != 2*n || uint64(len(out)) != 2*n {
		return bad(senseIllegalRequest, ascInvalidFieldInCDB) // the Data-Out is both halves, exactly
	}
	if blocks == 0 {
		return scsiResult{status: statusGood}, true
	}
	if u.writeProtected() {
		return bad(senseDataProtect, ascWriteProtected)
	}
	off := int64(lba << blockShift)
	cur := make([]byte, n)
	got, err := u.vol.ReadAt(cur, off)
	if err == io.EOF && uint64(got) == n {
		err = nil
	}
	if err != nil || uint64(got) != n {
		return bad(senseMediumError, ascReadError)
	}
	for i := range cur {
		if cur[i] != out[i] {
			res := u.senseResult(cdb, senseMiscompare, ascMiscompareDuringVerify)
			if len(res.sense) >= 7 && res.sense[0]&0x7f == 0x70 {
				res.sense[0] |= 0x80 // VALID: INFORMATION is the offset of the miscompare
				binary.BigEndian.PutUint32(res.sense[3:], uint32(i))
			}
			return res, true
		}
	}
	if _, err := u.vol.WriteAt(out[n:], off); err != nil {
		return bad(senseMediumError, ascWriteError)
	}
	if cdb[1]&0x08 != 0 { // FUA
		if err := u.vol.Flush(); err != nil {
			return bad(senseMediumError, ascWriteError)
		}
	}
	return scsiResult{status: statusGood}, true
}
