package iscsi

import (
	"encoding/binary"
	"io"
	"math/bits"
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

// rwLBA returns the starting LBA of a READ/WRITE-family CDB (rwBlocks
// has checked its length).
func rwLBA(cdb []byte) uint64 {
	switch cdb[0] {
	case 0x08, 0x0a:
		return uint64(cdb[1]&0x1f)<<16 | uint64(cdb[2])<<8 | uint64(cdb[3])
	case 0x28, 0x2a, 0x2e, 0xa8, 0xaa, 0xae:
		return uint64(binary.BigEndian.Uint32(cdb[2:]))
	default:
		return binary.BigEndian.Uint64(cdb[2:])
	}
}

// read is gotgt's SBCReadWrite for READ commands, reading into
// cmd.InSDBBuffer (at least the transfer's length: execute sizes it).
func (u *logicalUnit) read(_ int, cmd *api.SCSICommand) api.SAMStat {
	dev, cdb := cmd.Device, cmd.SCB
	sense := func(key byte, asc scsi.SCSISubError) api.SAMStat {
		scsi.BuildSenseData(cmd, key, asc)
		return api.SAMStatCheckCondition
	}
	if dev.Attrs.Removable && !dev.Attrs.Online {
		return sense(scsi.NOT_READY, scsi.ASC_MEDIUM_NOT_PRESENT)
	}
	blocks, rw, isWrite := rwBlocks(cdb)
	if !rw || isWrite {
		return sense(scsi.ILLEGAL_REQUEST, scsi.ASC_INVALID_FIELD_IN_CDB)
	}
	if cdb[0] != 0x08 && cdb[1]&0xe0 != 0 { // protection information: type 0 only
		return sense(scsi.ILLEGAL_REQUEST, scsi.ASC_INVALID_FIELD_IN_CDB)
	}
	lba, end := rwLBA(cdb), dev.Size>>dev.BlockShift
	if (blocks > 0 && (lba+uint64(blocks) < lba || lba+uint64(blocks) > end)) || (blocks == 0 && lba >= end) {
		return sense(scsi.ILLEGAL_REQUEST, scsi.ASC_LBA_OUT_OF_RANGE)
	}
	n := uint64(blocks) << dev.BlockShift
	buf := cmd.InSDBBuffer
	if buf == nil || uint64(len(buf.Buffer)) < n {
		return sense(scsi.ILLEGAL_REQUEST, scsi.ASC_INVALID_FIELD_IN_CDB)
	}
	if n > 0 {
		got, err := u.vol.ReadAt(buf.Buffer[:n], int64(lba<<dev.BlockShift))
		if err == io.EOF && uint64(got) == n {
			err = nil
		}
		if err != nil || uint64(got) < n {
			return sense(scsi.MEDIUM_ERROR, scsi.ASC_READ_ERROR)
		}
	}
	buf.Resid = uint32(n)
	return api.SAMStatGood
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
