package iscsi

import (
	"io"
	"math/bits"
	"slices"
	"sync"

	"github.com/gostor/gotgt/pkg/api"
	"github.com/gostor/gotgt/pkg/scsi"
)

// The READ operations of our LUs. gotgt's own (SBCReadWrite, then the
// backing store's Read) allocates the transfer twice and copies it once
// more into the command's buffer: three allocations and a copy of every
// byte read. Our operation, installed in the LU's op table so gotgt's
// engine still dispatches it, makes the same checks and reads the volume
// straight into the command's Data-In buffer, which comes from bufPool and
// goes back to it once the writer has sent it.

// readOps are the opcodes our read operation serves.
var readOps = []byte{0x08, 0x28, 0xa8, 0x88} // READ(6), READ(10), READ(12), READ(16)

// installReadOps replaces gotgt's READ operations in lu's op table (each
// LU has a table of its own) with u.read, keeping their reservation
// conflict bits.
func (u *logicalUnit) installReadOps() {
	sbc, ok := u.lu.DeviceProtocol.(scsi.SBCSCSIDeviceProtocol)
	if !ok {
		return // not the SBC device gotgt builds today: keep its operations
	}
	for _, op := range readOps {
		old := sbc.SCSIDeviceOps[op]
		sbc.SCSIDeviceOps[op] = scsi.NewSCSIDeviceOperation(u.read, old.ServiceAction, old.PRConflictBits)
	}
	u.fastRead = true
}

// readRange makes gotgt's checks of a READ CDB on dev: it returns the
// bytes to read, or the sense key and code of the CHECK CONDITION.
func readRange(dev *api.SCSILu, cdb []byte) (off, n uint64, key byte, asc scsi.SCSISubError) {
	if dev.Attrs.Removable && !dev.Attrs.Online {
		return 0, 0, scsi.NOT_READY, scsi.ASC_MEDIUM_NOT_PRESENT
	}
	blocks, rw, isWrite := rwBlocks(cdb)
	if !rw || isWrite {
		return 0, 0, scsi.ILLEGAL_REQUEST, scsi.ASC_INVALID_FIELD_IN_CDB
	}
	if cdb[0] != 0x08 && cdb[1]&0xe0 != 0 { // protection information: type 0 only
		return 0, 0, scsi.ILLEGAL_REQUEST, scsi.ASC_INVALID_FIELD_IN_CDB
	}
	if !inRange(rwLBA(cdb), uint64(blocks), dev.Size>>dev.BlockShift) {
		return 0, 0, scsi.ILLEGAL_REQUEST, scsi.ASC_LBA_OUT_OF_RANGE
	}
	return rwLBA(cdb) << dev.BlockShift, uint64(blocks) << dev.BlockShift, 0, 0
}

// read is gotgt's SBCReadWrite for READ commands, reading into
// cmd.InSDBBuffer (at least the transfer's length: execute sizes it).
func (u *logicalUnit) read(_ int, cmd *api.SCSICommand) api.SAMStat {
	off, n, key, asc := readRange(cmd.Device, cmd.SCB)
	if key != 0 {
		scsi.BuildSenseData(cmd, key, asc)
		return api.SAMStatCheckCondition
	}
	buf := cmd.InSDBBuffer
	if buf == nil || uint64(len(buf.Buffer)) < n {
		scsi.BuildSenseData(cmd, scsi.ILLEGAL_REQUEST, scsi.ASC_INVALID_FIELD_IN_CDB)
		return api.SAMStatCheckCondition
	}
	if n > 0 {
		got, err := u.vol.ReadAt(buf.Buffer[:n], int64(off))
		if err == io.EOF && uint64(got) == n {
			err = nil
		}
		if err != nil || uint64(got) < n {
			scsi.BuildSenseData(cmd, scsi.MEDIUM_ERROR, scsi.ASC_READ_ERROR)
			return api.SAMStatCheckCondition
		}
	}
	buf.Resid = uint32(n)
	return api.SAMStatGood
}

// asyncReader is a Volume that can start a read and report its end later
// (service/ceph's *Image does): a READ then needs no worker, and no OS
// thread waits for it.
type asyncReader interface {
	// ReadAsync starts reading len(p) bytes at off and returns; done is
	// called once when the read has ended, unless ReadAsync returns an
	// error (then nothing started).
	ReadAsync(p []byte, off int64, done func(n int, err error)) error
}

// readAsync starts a READ without the engine and without a worker, when
// the volume reads asynchronously and the command is a plain one: a READ
// of LUN 0 whose EDTL is its transfer length, which passes readRange and
// the reservations.
// done gets the result, on another goroutine. It returns false, having
// done nothing, for any other command: the caller executes it as usual,
// and that produces the answer (its CHECK CONDITION, its residuals).
func (u *logicalUnit) readAsync(r *scsiRequest, done func(scsiResult)) bool {
	ar, ok := u.vol.(asyncReader)
	if !ok || !u.fastRead || r.lun != 0 || r.write || !r.read || len(r.cdb) == 0 || !slices.Contains(readOps, r.cdb[0]) {
		return false
	}
	u.mu.RLock() // the exclusive operations change the attributes readRange reads
	off, n, key, _ := readRange(u.lu, r.cdb)
	conflict := u.res.conflicts(r.nexus, r.cdb) || u.pendingUnitAttention(r.nexus)
	u.mu.RUnlock()
	if key != 0 || conflict || n == 0 || n != uint64(r.edtl) || n > maxTransfer {
		return false
	}
	buf, release := getBuf(int(n))
	err := ar.ReadAsync(buf, int64(off), func(got int, err error) {
		if err != nil || uint64(got) != n {
			release()
			done(u.readError(r.cdb))
			return
		}
		done(scsiResult{status: statusGood, data: buf, release: release})
	})
	if err != nil {
		release()
		return false
	}
	return true
}

// readError is the CHECK CONDITION of a failed read, as u.read builds it.
func (u *logicalUnit) readError(cdb []byte) scsiResult {
	cmd := &api.SCSICommand{SCB: cdb, SCBLength: len(cdb), Device: u.lu}
	u.mu.RLock() // BuildSenseData reads the sense format MODE SELECT sets
	scsi.BuildSenseData(cmd, scsi.MEDIUM_ERROR, scsi.ASC_READ_ERROR)
	u.mu.RUnlock()
	res := scsiResult{status: statusCheckCondition}
	if cmd.SenseBuffer != nil {
		res.sense = append([]byte(nil), cmd.SenseBuffer.Buffer...)
	}
	return res
}

// bufPool recycles Data-In buffers by power-of-two size class, from 4 KiB
// to maxPooled. Larger buffers are allocated and left to the collector.
// A recycled buffer holds old data: only the bytes a read filled are ever
// sent.
var bufPool [bufClasses]sync.Pool

const (
	minPooledShift = 12 // 4 KiB
	maxPooledShift = 24 // 16 MiB
	bufClasses     = maxPooledShift - minPooledShift + 1
)

// bufClass is the size class of an n-byte buffer, or -1 if it is not pooled.
func bufClass(n int) int {
	if n <= 1<<minPooledShift {
		return 0
	}
	c := bits.Len(uint(n-1)) - minPooledShift
	if c >= bufClasses {
		return -1
	}
	return c
}

// getBuf returns a buffer of n bytes whose contents are undefined, and
// the function that recycles it (call it once nothing refers to it).
func getBuf(n int) ([]byte, func()) {
	c := bufClass(n)
	if c < 0 {
		return make([]byte, n), func() {}
	}
	p, _ := bufPool[c].Get().(*[]byte)
	if p == nil {
		b := make([]byte, 1<<(c+minPooledShift))
		p = &b
	}
	return (*p)[:n], func() { bufPool[c].Put(p) }
}
