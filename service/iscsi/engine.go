package iscsi

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/gostor/gotgt/pkg/api"
	"github.com/gostor/gotgt/pkg/config"
	"github.com/gostor/gotgt/pkg/scsi"
	uuid "github.com/satori/go.uuid"
)

// blockShift: 512-byte logical blocks (what iPXE's sanboot and BIOS INT13
// emulation expect).
const blockShift = 9

// SCSI status codes and sense keys we produce ourselves.
const (
	statusGood           = 0x00
	statusCheckCondition = 0x02
	statusBusy           = 0x08
	statusTaskSetFull    = 0x28
	statusTaskAborted    = 0x40

	senseIllegalRequest = 0x05
	senseHardwareError  = 0x04
	senseMediumError    = 0x03
	senseAbortedCommand = 0x0b
)

// prMu serialises gotgt's persistent-reservation operator, a package-level
// map without a lock of its own, across all targets.
var prMu sync.Mutex

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
// asynchronous reads (startRead): past it a READ waits for a worker, and
// the workers, cfg.Workers of them, hold one buffer each.
const maxSessionReadBuf = 4 * maxTransfer

// newLogicalUnit builds an LU for vol under the target name iqn. key is the
// unique path vol is registered under; id a process-unique device id.
func newLogicalUnit(iqn, key string, id uint64, vol Volume) (*logicalUnit, error) {
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
	lu.Attrs.VendorID = "BMI"
	lu.Attrs.ProductID = "VOLUME"
	lu.Attrs.ProductRev = "1.0"
	for i, v := range lu.Attrs.VersionDesction {
		if v == 0x0320 { // SBC-2: the Block Limits page we return is SBC-3's
			lu.Attrs.VersionDesction[i] = 0x04c0
		}
	}
	prMu.Lock()
	if op, ok := scsi.GetSCSIReservationOperator().(*scsi.SCSISimpleReservationOperator); ok {
		op.InitLUReservation(iqn, id)
	}
	prMu.Unlock()
	u := &logicalUnit{lu: lu, target: tgt, vol: vol}
	u.installReadOps()
	return u, nil
}

// release forgets the LU's reservations and the volume registration.
func (u *logicalUnit) release(key string) {
	prMu.Lock()
	scsi.GetSCSIReservationOperator().RemoveAllReservation(u.target.Name, u.lu.UUID)
	prMu.Unlock()
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
}

// exclusiveOps change LU state that gotgt reads and writes without locks.
var exclusiveOps = map[byte]bool{
	0x15: true, 0x55: true, // MODE SELECT
	0x16: true, 0x17: true, 0x56: true, 0x57: true, // RESERVE, RELEASE
	0x1b: true,             // START STOP UNIT
	0x1e: true,             // PREVENT ALLOW MEDIUM REMOVAL
	0x5e: true, 0x5f: true, // PERSISTENT RESERVE IN/OUT
}

// rwBlocks returns the transfer length in blocks of a READ/WRITE-family
// CDB, and whether the CDB is one (isWrite: it moves data to the medium).
func rwBlocks(cdb []byte) (blocks uint32, rw, isWrite bool) {
	if len(cdb) < 6 {
		return 0, false, false
	}
	switch cdb[0] {
	case 0x08, 0x0a: // READ(6), WRITE(6)
		b := uint32(cdb[4])
		if b == 0 {
			b = 256
		}
		return b, true, cdb[0] == 0x0a
	case 0x28, 0x2a, 0x2e: // READ(10), WRITE(10), WRITE AND VERIFY(10)
		if len(cdb) < 10 {
			return 0, false, false
		}
		return uint32(binary.BigEndian.Uint16(cdb[7:])), true, cdb[0] != 0x28
	case 0xa8, 0xaa, 0xae: // the 12-byte ones
		if len(cdb) < 12 {
			return 0, false, false
		}
		return binary.BigEndian.Uint32(cdb[6:]), true, cdb[0] != 0xa8
	case 0x88, 0x8a, 0x8e: // the 16-byte ones
		if len(cdb) < 16 {
			return 0, false, false
		}
		return binary.BigEndian.Uint32(cdb[10:]), true, cdb[0] != 0x88
	}
	return 0, false, false
}

// setRWBlocks rewrites the transfer length of a READ/WRITE CDB.
func setRWBlocks(cdb []byte, blocks uint32) {
	switch cdb[0] {
	case 0x08, 0x0a:
		cdb[4] = byte(blocks)
	case 0x28, 0x2a, 0x2e:
		binary.BigEndian.PutUint16(cdb[7:], uint16(blocks))
	case 0xa8, 0xaa, 0xae:
		binary.BigEndian.PutUint32(cdb[6:], blocks)
	case 0x88, 0x8a, 0x8e:
		binary.BigEndian.PutUint32(cdb[10:], blocks)
	}
}

// fixedSense builds fixed-format sense data.
func fixedSense(key byte, asc uint16) []byte {
	s := make([]byte, 18)
	s[0] = 0x70
	s[2] = key
	s[7] = 10
	s[12] = byte(asc >> 8)
	s[13] = byte(asc)
	return s
}

func checkCondition(key byte, asc uint16) scsiResult {
	return scsiResult{status: statusCheckCondition, sense: fixedSense(key, asc)}
}

// execute runs one command through gotgt's engine and applies the iSCSI
// residual rules (RFC 7143 §11.4.5) around it.
func (u *logicalUnit) execute(r *scsiRequest) (res scsiResult) {
	if r.lun != 0 {
		return checkCondition(senseIllegalRequest, 0x2500) // LOGICAL UNIT NOT SUPPORTED
	}
	if len(r.cdb) == 0 {
		return checkCondition(senseIllegalRequest, 0x2000)
	}
	cdb := append([]byte(nil), r.cdb...)
	blocks, rw, isWrite := rwBlocks(cdb)
	xfer := uint64(blocks) << blockShift
	if rw {
		if xfer > maxTransfer {
			return checkCondition(senseIllegalRequest, 0x2400) // INVALID FIELD IN CDB
		}
		lba, end := rwLBA(cdb), u.lu.Size>>blockShift
		if (blocks > 0 && (lba+uint64(blocks) < lba || lba+uint64(blocks) > end)) || (blocks == 0 && lba >= end) {
			return checkCondition(senseIllegalRequest, 0x2100) // LOGICAL BLOCK ADDRESS OUT OF RANGE
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
	cmd := &api.SCSICommand{
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
		// room, the answer is cut to the allocation length and EDTL below.
		alloc, _ := allocLength(cdb)
		inLen = max(min(inLen, maxTransfer), min(alloc, 1<<20), 8192)
	}
	switch {
	case rw && !isWrite && u.fastRead:
		// READ: u.read fills it; the writer recycles it once sent.
		buf, release := getBuf(int(inLen))
		cmd.InSDBBuffer = &api.SCSIDataBuffer{Buffer: buf, Length: uint32(inLen)}
		defer func() {
			if res.data != nil {
				res.release = release
			} else {
				release()
			}
		}()
	case !(rw && isWrite):
		cmd.InSDBBuffer = &api.SCSIDataBuffer{Buffer: make([]byte, inLen), Length: uint32(inLen)}
	}
	if r.write {
		out := r.out
		if rw && isWrite && uint64(len(out)) > xfer {
			out = out[:xfer] // never write past the CDB's blocks
		}
		cmd.OutSDBBuffer = &api.SCSIDataBuffer{Buffer: out, Length: uint32(len(out))}
	}

	var stat api.SAMStat
	func() {
		if exclusiveOps[cdb[0]] {
			u.mu.Lock()
			defer u.mu.Unlock()
			if cdb[0] == 0x5e || cdb[0] == 0x5f {
				prMu.Lock()
				defer prMu.Unlock()
			}
		} else {
			u.mu.RLock()
			defer u.mu.RUnlock()
		}
		defer func() {
			if p := recover(); p != nil {
				stat = api.SAMStat{Stat: 0xff, Err: fmt.Errorf("engine panic: %v", p)}
			}
		}()
		stat = u.lu.PerformCommand(0, cmd)
	}()

	switch {
	case stat.Stat == 0xff:
		return checkCondition(senseHardwareError, 0x4400) // INTERNAL TARGET FAILURE
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
		return checkCondition(senseMediumError, 0x1100) // UNRECOVERED READ ERROR
	}
	res.status = statusGood
	if cdb[0] == 0x12 && cdb[1]&1 != 0 && cdb[2] == 0xb0 && len(cmd.InSDBBuffer.Buffer) >= 12 {
		// Block Limits: gotgt leaves MAXIMUM TRANSFER LENGTH at 0 (none)
		binary.BigEndian.PutUint32(cmd.InSDBBuffer.Buffer[8:], maxTransfer>>blockShift)
	}
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
