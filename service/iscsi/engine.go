package iscsi

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/gostor/gotgt/pkg/api"
	"github.com/gostor/gotgt/pkg/config"
	"github.com/gostor/gotgt/pkg/scsi"
	uuid "github.com/satori/go.uuid"
)

// blockShift: 512-byte logical blocks (what iPXE's sanboot and BIOS INT13
// emulation expect).
const blockShift = 9

// logicalUnit is one exported Volume as a gotgt SCSI LU. Commands that only
// read the LU's shared state run concurrently under mu.RLock; the few that
// change it (reservations, PREVENT ALLOW MEDIUM REMOVAL, START STOP, MODE
// SELECT) take mu exclusively, because gotgt writes those fields unlocked.
type logicalUnit struct {
	mu       sync.RWMutex
	lu       *api.SCSILu
	target   *api.SCSITarget
	vol      Volume
	fastRead bool // READ goes through u.read (read.go)
	res      *reservations
	log      *slog.Logger
	resets   atomic.Uint64 // LOGICAL UNIT RESETs so far (unitAttention)
}

// maxTransfer is the most one command may move, in bytes (advertised as
// the Block Limits page's MAXIMUM TRANSFER LENGTH). A longer one gets
// CHECK CONDITION, INVALID FIELD IN CDB, before anything is allocated for
// it: the initiator, a tenant's machine, must not be able to make bmid
// allocate what a CDB or an EDTL claims (up to terabytes).
const maxTransfer = 16 << 20

// maxSessionWriteBuf bounds the Data-Out buffers a session holds at once
// (writes received or waiting for their data): a write that would pass it
// gets TASK SET FULL.
const maxSessionWriteBuf = 4 * maxTransfer

// maxSessionReadBuf bounds the Data-In buffers of a session's
// asynchronous reads (startAsyncRead): past it a READ waits for a worker, and
// the workers, cfg.Workers of them, hold one buffer each.
const maxSessionReadBuf = 4 * maxTransfer

// newLogicalUnit builds an LU for vol under the target name iqn. key is the
// unique path vol is registered under; id a process-unique device id.
// Its reservations are loaded from store (nil: none kept across restarts).
func newLogicalUnit(ctx context.Context, iqn, key string, id uint64, vol Volume, store ReservationStore, log *slog.Logger) (*logicalUnit, error) {
	res, err := loadReservations(ctx, iqn, store)
	if err != nil {
		return nil, err
	}
	registerStore()
	volumes.Store(key, vol)
	lu, err := scsi.NewSCSILu(&config.BackendStorage{
		DeviceID:         id,
		Path:             storeName + ":" + key,
		Online:           true,
		ThinProvisioning: true,
		BlockShift:       blockShift,
	})
	if err != nil {
		volumes.Delete(key)
		return nil, fmt.Errorf("create the logical unit of %s: %w", iqn, err)
	}
	tgt := &api.SCSITarget{
		Name:    iqn,
		TID:     int(id),
		State:   api.TargetReady,
		Devices: api.LUNMap{0: lu},
		LUN0:    lu,
		TargetPortGroups: []*api.TargetPortGroup{{
			GroupID: 1,
			TargetPortGroup: []*api.SCSITargetPort{{
				RelativeTargetPortID: 1, TargetPortName: iqn + ",t,0x1",
			}},
		}},
		ITNexus: map[uuid.UUID]*api.ITNexus{},
	}
	// 512-byte physical blocks, as tgtd reports for RBD (libiscsi's GET LBA
	// STATUS test assumes it); 4 KiB is advertised as the optimal transfer
	// granularity instead (Block Limits VPD).
	lu.Attrs.Lbppbe = 0
	lu.Attrs.VendorID = "BMI"
	lu.Attrs.ProductID = "VOLUME"
	lu.Attrs.ProductRev = "1.0"
	for i, v := range lu.Attrs.VersionDesction {
		if v == 0x0320 { // SBC-2: the Block Limits page we return is SBC-3's
			lu.Attrs.VersionDesction[i] = 0x04c0
		}
	}
	u := &logicalUnit{lu: lu, target: tgt, vol: vol, res: res, log: log}
	u.installReadOps()
	return u, nil
}

// release forgets the volume registration (the reservations stay saved).
func (u *logicalUnit) release(key string) {
	volumes.Delete(key)
}

// size is the LU's capacity in bytes.
func (u *logicalUnit) size() uint64 { return u.lu.Size }

// scsiRequest is one SCSI command as the transport hands it to the engine.
type scsiRequest struct {
	cdb   []byte
	lun   uint64
	edtl  uint32 // expected data transfer length
	read  bool
	write bool
	out   []byte // the Data-Out buffer (len edtl) of a write
	nexus *nexus
}

// scsiResult is what the transport sends back.
type scsiResult struct {
	status    byte
	sense     []byte
	data      []byte // Data-In, already cut to edtl
	release   func() // recycles data's buffer once sent (nil: nothing to do)
	residual  uint32
	overflow  bool
	underflow bool
}

// nexus is one I_T nexus (a logged-in session) as gotgt sees it.
type nexus struct {
	itn    api.ITNexus
	luInfo api.ITNexusLuInfo
	// resets is the LU's reset count this nexus has been told about (a
	// UNIT ATTENTION); resetsKnown says it has been set.
	resets      atomic.Uint64
	resetsKnown atomic.Bool
}

// exclusiveOps change LU state that gotgt reads and writes without locks,
// or must not interleave with other commands' writes (ORWRITE, COMPARE
// AND WRITE read and write the same blocks).
var exclusiveOps = map[byte]bool{
	opModeSelect6: true, opModeSelect10: true,
	opReserve6: true, opRelease6: true, opReserve10: true, opRelease10: true,
	opStartStop:    true,
	opPreventAllow: true,
	opPRIn:         true, opPROut: true,
	opOrWrite16: true, opCompareAndWrite: true,
}

// execute runs one command, through our own operations (ownOp) or
// gotgt's engine, and applies the iSCSI residual rules (RFC 7143 §11.4.5)
// around it. Every command first passes the LU's reservations.
func (u *logicalUnit) execute(r *scsiRequest) (res scsiResult) {
	if r.lun != 0 {
		return checkCondition(senseIllegalRequest, ascLUNNotSupported)
	}
	if len(r.cdb) == 0 {
		return checkCondition(senseIllegalRequest, ascInvalidOpcode)
	}
	cdb := append([]byte(nil), r.cdb...)
	blocks, rw, isWrite := rwBlocks(cdb)
	xfer := uint64(blocks) << blockShift
	if rw {
		if xfer > maxTransfer {
			return checkCondition(senseIllegalRequest, ascInvalidFieldInCDB)
		}
		if !inRange(rwLBA(cdb), uint64(blocks), u.lu.Size>>blockShift) {
			return checkCondition(senseIllegalRequest, ascLBAOutOfRange)
		}
	}
	var residual uint32
	var overflow, underflow bool
	if rw {
		switch {
		case uint64(r.edtl) < xfer:
			overflow, residual = true, uint32(xfer-uint64(r.edtl))
			if isWrite {
				// Write only what the initiator sent, in whole blocks.
				blocks = r.edtl >> blockShift
				if blocks == 0 {
					return scsiResult{status: statusGood, residual: residual, overflow: true}
				}
				setRWBlocks(cdb, blocks)
				xfer = uint64(blocks) << blockShift
			}
		case uint64(r.edtl) > xfer:
			underflow, residual = true, uint32(uint64(r.edtl)-xfer)
		}
	}
	out := r.out
	if rw && isWrite && uint64(len(out)) > xfer {
		out = out[:xfer] // never write past the CDB's blocks
	}
	var own *scsiResult
	var cmd *api.SCSICommand
	var stat api.SAMStat
	var release func()
	func() {
		if exclusiveOps[cdb[0]] {
			u.mu.Lock()
			defer u.mu.Unlock()
		} else {
			u.mu.RLock()
			defer u.mu.RUnlock()
		}
		if ua, ok := u.unitAttention(r.nexus, cdb); ok {
			own = &ua
			return
		}
		if u.res.conflicts(r.nexus, cdb) {
			own = &scsiResult{status: statusReservationConflict}
			return
		}
		if op := ownOp(cdb); op != nil {
			if res, ok := u.runOwn(op, r, cdb, out); ok {
				own = &res
				return
			}
		}
		cmd, stat, release = u.engine(r, cdb, out, rw, isWrite, xfer)
	}()
	if own != nil {
		if own.status == statusGood && rw {
			own.residual, own.overflow, own.underflow = residual, overflow, underflow
		}
		return *own
	}
	if release != nil {
		// READ: u.read filled a pooled buffer; the writer recycles it once sent.
		defer func() {
			if res.data != nil {
				res.release = release
			} else {
				release()
			}
		}()
	}

	switch {
	case stat.Stat == 0xff:
		return checkCondition(senseHardwareError, ascInternalTargetFailure)
	case stat.Stat != statusGood:
		res.status = stat.Stat
		if cmd.SenseBuffer != nil && len(cmd.SenseBuffer.Buffer) > 0 {
			// gotgt answers BUSY for a failed backing-store I/O, with
			// MEDIUM ERROR sense: that is a CHECK CONDITION.
			res.status = statusCheckCondition
			res.sense = append([]byte(nil), cmd.SenseBuffer.Buffer...)
		}
		return res
	}
	if rw && !isWrite && xfer > 0 && cmd.InSDBBuffer.Resid == 0 {
		// gotgt's own read operation (used if ours could not be installed)
		// loses the error of a failed backing-store read and answers GOOD
		// with zeros; the length it records (Resid) is 0 only then.
		return checkCondition(senseMediumError, ascReadError)
	}
	res.status = statusGood
	if cmd.InSDBBuffer != nil && r.read {
		buf := cmd.InSDBBuffer.Buffer
		var actual uint64
		if rw {
			actual = xfer
		} else {
			actual = responseLength(cdb, buf, cmd.InSDBBuffer.Resid)
			if alloc, ok := allocLength(cdb); ok && alloc < actual {
				actual = alloc
			}
			switch {
			case actual < uint64(r.edtl):
				underflow, residual = true, uint32(uint64(r.edtl)-actual)
			case actual > uint64(r.edtl):
				overflow, residual = true, uint32(actual-uint64(r.edtl))
			}
		}
		n := min(actual, uint64(r.edtl), uint64(len(buf)))
		res.data = buf[:n]
	}
	res.residual, res.overflow, res.underflow = residual, overflow, underflow
	return res
}

// engine runs a command through gotgt's engine; the caller holds u.mu.
// release recycles the pooled Data-In buffer of a READ (nil: none).
func (u *logicalUnit) engine(r *scsiRequest, cdb, out []byte, rw, isWrite bool, xfer uint64) (cmd *api.SCSICommand, stat api.SAMStat, release func()) {
	cmd = &api.SCSICommand{
		OpCode:          cdb[0],
		Target:          u.target,
		Device:          u.lu,
		SCB:             cdb,
		SCBLength:       len(cdb),
		RelTargetPortID: 1,
	}
	if r.nexus != nil {
		cmd.ITNexus = &r.nexus.itn
		cmd.ITNexusID = r.nexus.itn.ID
		cmd.ITNexusLuInfo = &r.nexus.luInfo
	}
	switch {
	case r.read && r.write:
		cmd.Direction = api.SCSIDataBidirection
	case r.read:
		cmd.Direction = api.SCSIDataRead
	case r.write:
		cmd.Direction = api.SCSIDataWrite
	}
	inLen := uint64(r.edtl)
	if rw && !isWrite {
		inLen = xfer
	}
	if !rw {
		// gotgt writes whole pages whatever the allocation length: give it
		// room, the answer is cut to the allocation length and EDTL later.
		alloc, _ := allocLength(cdb)
		inLen = max(min(inLen, maxTransfer), min(alloc, 1<<20), 8192)
	}
	switch {
	case rw && !isWrite && u.fastRead:
		var buf []byte
		buf, release = getBuf(int(inLen))
		cmd.InSDBBuffer = &api.SCSIDataBuffer{Buffer: buf, Length: uint32(inLen)}
	case !(rw && isWrite):
		cmd.InSDBBuffer = &api.SCSIDataBuffer{Buffer: make([]byte, inLen), Length: uint32(inLen)}
	}
	if r.write {
		cmd.OutSDBBuffer = &api.SCSIDataBuffer{Buffer: out, Length: uint32(len(out))}
	}
	defer func() {
		if p := recover(); p != nil {
			stat = api.SAMStat{Stat: 0xff, Err: fmt.Errorf("engine panic: %v", p)}
		}
	}()
	return cmd, u.lu.PerformCommand(0, cmd), release
}

// uaExempt are the commands a pending UNIT ATTENTION does not stop (SAM-5
// §5.14: INQUIRY, REPORT LUNS and REQUEST SENSE).
var uaExempt = map[byte]bool{opInquiry: true, opReportLUNs: true, opRequestSense: true}

// unitAttention reports the UNIT ATTENTION nx has pending: a LOGICAL UNIT
// RESET happened since its last command (SAM-5 §6.3.4: every I_T nexus
// gets one; ASC BUS DEVICE RESET FUNCTION OCCURRED). It is reported once.
func (u *logicalUnit) unitAttention(nx *nexus, cdb []byte) (scsiResult, bool) {
	if nx == nil {
		return scsiResult{}, false
	}
	now := u.resets.Load()
	if !nx.resetsKnown.Load() {
		nx.resets.Store(now)
		nx.resetsKnown.Store(true)
		return scsiResult{}, false
	}
	if uaExempt[cdb[0]] || nx.resets.Load() == now || !nx.resets.CompareAndSwap(nx.resets.Load(), now) {
		return scsiResult{}, false
	}
	return u.senseResult(cdb, senseUnitAttention, ascResetOccurred), true
}

// pendingUnitAttention reports whether nx has a UNIT ATTENTION to get.
func (u *logicalUnit) pendingUnitAttention(nx *nexus) bool {
	return nx != nil && nx.resetsKnown.Load() && nx.resets.Load() != u.resets.Load()
}

// runOwn runs one of our own operations; a panic in it (a bug) answers
// INTERNAL TARGET FAILURE instead of ending bmid.
func (u *logicalUnit) runOwn(op ownOpFunc, r *scsiRequest, cdb, out []byte) (res scsiResult, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			u.log.Error("iscsi command panicked", "iqn", u.res.iqn, "cdb", fmt.Sprintf("%x", cdb), "panic", fmt.Sprint(p))
			res, ok = checkCondition(senseHardwareError, ascInternalTargetFailure), true
		}
	}()
	return op(u, r, cdb, out)
}
