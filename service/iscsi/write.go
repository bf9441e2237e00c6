package iscsi

import "slices"

// The WRITE fast path. A plain WRITE goes through gotgt's engine on a
// worker: SBCReadWrite's checks, then the backing store's Write, which
// calls the volume's WriteAt and waits, one OS thread blocked in librbd per
// write in flight. When the volume can write asynchronously, a plain
// WRITE whose data has all arrived is started from the read loop instead
// and answered from its completion: at QD 16 that is 16 fewer threads
// waking per round of writes. The checks are gotgt's for these CDBs; any
// command they do not pass, and any write that must reach the medium
// before its status (FUA, or the caching mode page's WCE off), takes the
// worker path, which produces the answer.

// writeOps are the opcodes the fast path serves.
var writeOps = []byte{opWrite6, opWrite10, opWrite12, opWrite16}

// asyncWriter is a Volume that can start a write and report its end later
// (service/ceph's *Image does).
type asyncWriter interface {
	// WriteAsync starts writing p at off and returns; done is called once
	// when the volume has taken the write, unless WriteAsync returns an
	// error (then nothing started).
	WriteAsync(p []byte, off int64, done func(n int, err error)) error
}

// writeAsync starts r, a WRITE with its data in out, without the engine
// and without a worker, when the volume writes asynchronously and the
// command is a plain one: a WRITE of LUN 0 whose EDTL is its transfer
// length, with neither FUA nor protection information, on a medium that
// is not write-protected, caches writes (WCE) and has no reservation or
// UNIT ATTENTION against r's nexus. The LU's shared lock is held until the
// write completes, as the engine holds it around a write, so the exclusive
// operations (COMPARE AND WRITE, resets) never run beside one. done gets
// the result, on another goroutine. It returns false, having done nothing,
// for any other command.
func (u *logicalUnit) writeAsync(r *scsiRequest, done func(scsiResult)) bool {
	aw, ok := u.vol.(asyncWriter)
	cdb := r.cdb
	if !ok || r.lun != 0 || !r.write || r.read || len(cdb) == 0 || !slices.Contains(writeOps, cdb[0]) {
		return false
	}
	if cdb[0] != opWrite6 && cdb[1]&0xe8 != 0 { // WRPROTECT (protection information) or FUA
		return false
	}
	blocks, rw, _ := rwBlocks(cdb)
	n := uint64(blocks) << blockShift
	if !rw || n == 0 || n != uint64(r.edtl) || n > maxTransfer || uint64(len(r.out)) < n {
		return false
	}
	if !u.mu.TryRLock() { // an exclusive operation runs or waits: queue behind it on a worker
		return false
	}
	lba := rwLBA(cdb)
	if (u.lu.Attrs.Removable && !u.lu.Attrs.Online) || u.writeProtected() || !u.writeCacheEnabled() ||
		!inRange(lba, uint64(blocks), u.lu.Size>>blockShift) ||
		u.res.conflicts(r.nexus, cdb) || u.pendingUnitAttention(r.nexus) {
		u.mu.RUnlock()
		return false
	}
	err := aw.WriteAsync(r.out[:n], int64(lba<<blockShift), func(got int, err error) {
		u.mu.RUnlock()
		if err != nil || uint64(got) != n {
			done(u.writeError(cdb))
			return
		}
		done(scsiResult{status: statusGood})
	})
	if err != nil {
		u.mu.RUnlock()
		return false
	}
	return true
}

// writeCacheEnabled reports the caching mode page's WCE bit; false when
// the page is missing (the engine's path then answers the command).
// Callers hold u.mu (MODE SELECT changes the page under the exclusive
// lock).
func (u *logicalUnit) writeCacheEnabled() bool {
	for i := range u.lu.ModePages {
		if p := &u.lu.ModePages[i]; p.PageCode == 0x08 && p.SubPageCode == 0 && len(p.Data) > 0 {
			return p.Data[0]&0x04 != 0
		}
	}
	return false
}

// writeError is what a failed write answers, as on the engine's path:
// CHECK CONDITION, MEDIUM ERROR / WRITE ERROR.
func (u *logicalUnit) writeError(cdb []byte) scsiResult {
	return u.senseResult(cdb, senseMediumError, ascWriteError)
}
