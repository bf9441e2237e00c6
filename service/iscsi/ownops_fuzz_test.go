package iscsi

import (
	"encoding/binary"
	"testing"

	"github.com/bmi-go/bmi/service/logging"
)

// FuzzOwnOps feeds arbitrary CDBs and Data-Out buffers to the commands the
// target implements itself (and to the reservation checks every command
// passes): a tenant's machine controls both. Nothing may panic, every
// answer must be a valid status, and no command may touch the volume
// beyond its end (the memory volume would fail such an access, which the
// target turns into a MEDIUM ERROR: that must not happen either), and none
// may panic (runOwn would answer HARDWARE ERROR).
func FuzzOwnOps(f *testing.F) {
	seeds := [][]byte{
		writeSame10(0, 3, 4), writeSame16(0x08, 100, 0), writeSame16(0x01, 0, 8),
		{opCompareAndWrite, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0},
		unmapCDB(0, 24), {opOrWrite16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},
		{opServiceActionIn, saGetLBAStatus, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 24, 0, 0},
		{opMaintenanceIn, saReportSupportedOps, 0x82, opPROut, 0, 1, 0, 0, 1, 0, 0, 0},
		{opPROut, prOutRegister, 0, 0, 0, 0, 0, 0, 24, 0}, {opPRIn, 3, 0, 0, 0, 0, 0, 4, 0, 0},
		{opReserve6, 0, 0, 0, 0, 0}, {opInquiry, 1, 0xb0, 0, 64, 0},
	}
	for _, s := range seeds {
		out := make([]byte, 1024)
		binary.BigEndian.PutUint64(out[8:], 0x1234)
		f.Add(s, out, uint32(len(out)))
	}
	vol := newMemVolume(64 << 10)
	u, err := newLogicalUnit(t0(), testIQN(9), "fuzz-ownops", deviceIDs.Add(1), vol, nil, logging.Discard())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { u.release("fuzz-ownops") })
	nx := &nexus{}
	nx.itn.Tag = "iqn.2026-11.org.test:fuzz,i,0x800000000001"
	f.Fuzz(func(t *testing.T, cdb, out []byte, edtl uint32) {
		if len(cdb) == 0 || len(cdb) > 32 || ownOp(cdb) == nil {
			return
		}
		if len(cdb) < 16 { // the transport hands over at least the BHS's 16 bytes
			cdb = append(cdb, make([]byte, 16-len(cdb))...)
		}
		edtl %= 1 << 17
		data := make([]byte, edtl)
		copy(data, out)
		res := u.execute(&scsiRequest{cdb: cdb, edtl: edtl, read: true, write: true, out: data, nexus: nx})
		switch res.status {
		case statusGood, statusCheckCondition, statusReservationConflict:
		default:
			t.Fatalf("CDB %x: status 0x%x", cdb, res.status)
		}
		if uint32(len(res.data)) > edtl {
			t.Fatalf("CDB %x: %d bytes of Data-In for an EDTL of %d", cdb, len(res.data), edtl)
		}
		if res.status == statusCheckCondition && len(res.sense) > 2 {
			switch res.sense[2] & 0x0f {
			case senseMediumError:
				t.Fatalf("CDB %x: MEDIUM ERROR %x: the command reached past the volume", cdb, res.sense)
			case senseHardwareError:
				t.Fatalf("CDB %x: HARDWARE ERROR %x: the command panicked", cdb, res.sense)
			}
		}
	})
}
