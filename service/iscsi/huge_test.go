package iscsi

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// rw16 is a READ(16)/WRITE(16) CDB.
func rw16(op byte, lba uint64, blocks uint32) []byte {
	c := make([]byte, 16)
	c[0] = op
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], blocks)
	return c
}

// TestHugeTransfers: a command asking for more than the target transfers
// at once (maxTransfer) gets a CHECK CONDITION and nothing is allocated
// for it: an initiator must not be able to make the target allocate
// gigabytes, whatever the CDB's length or the EDTL say.
func TestHugeTransfers(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	vol := newMemVolume(1 << 20)
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	cases := []struct {
		name string
		cdb  []byte
		edtl uint32
		read bool
		asc  uint16
	}{
		{"READ(16) of 2 TiB at LBA 0", rw16(0x88, 0, 0xffffffff), 4096, true, 0x2400},
		{"READ(16) of 2 TiB, EDTL 64 MiB", rw16(0x88, 0, 0xffffffff), 64 << 20, true, 0x2400},
		{"READ(10) of 32 MiB", rw10(0x28, 0, 0xffff), 0xffff * 512, true, 0x2400},
		{"READ(16) of 16 MiB on a 1 MiB volume", rw16(0x88, 0, maxTransfer/512), maxTransfer, true, 0x2100},
		{"READ(10) beyond the end", rw10(0x28, 4096, 8), 4096, true, 0x2100},
		{"READ(16) past 2^64", rw16(0x88, 1<<63, 8), 4096, true, 0x2100},
		{"WRITE(16) of 2 TiB, EDTL 4 GiB", rw16(0x8a, 0, 0xffffffff), 0xffffffff, false, 0x2400},
		{"WRITE(10) EDTL 4 GiB", rw10(0x2a, 0, 8), 0xffffffff, false, 0x2400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out []byte
			if !tc.read {
				out = make([]byte, 512) // the W bit; the rest would follow on R2T
			}
			tk := c.submit(tc.cdb, tc.edtl, tc.read, out)
			c.wait(tk)
			if tk.status != statusCheckCondition || len(tk.sense) < 14 {
				t.Fatalf("status 0x%x sense %x, want CHECK CONDITION", tk.status, tk.sense)
			}
			if key, asc := tk.sense[2]&0xf, binary.BigEndian.Uint16(tk.sense[12:]); key != senseIllegalRequest || asc != tc.asc {
				t.Fatalf("sense key 0x%x ASC 0x%04x, want ILLEGAL REQUEST 0x%04x", key, asc, tc.asc)
			}
		})
	}
	// A write beyond the end writes nothing.
	before := vol.snapshot()
	tk := c.submit(rw10(0x2a, 2047, 2), 1024, false, bytes.Repeat([]byte{0xee}, 1024))
	c.wait(tk)
	if tk.status != statusCheckCondition || len(tk.sense) < 14 || binary.BigEndian.Uint16(tk.sense[12:]) != 0x2100 {
		t.Fatalf("write across the end: status 0x%x sense %x", tk.status, tk.sense)
	}
	if !bytes.Equal(before, vol.snapshot()) {
		t.Fatal("a refused write changed the volume")
	}
	// The Block Limits page says how much one command may move.
	tk = c.submit([]byte{0x12, 1, 0xb0, 0, 64, 0}, 64, true, nil)
	c.wait(tk)
	if tk.status != statusGood || len(tk.in) < 12 || binary.BigEndian.Uint32(tk.in[8:]) != maxTransfer/512 {
		t.Fatalf("block limits: status 0x%x page %x, want MAXIMUM TRANSFER LENGTH %d", tk.status, tk.in, maxTransfer/512)
	}
	// The session still works.
	tk = c.submit(rw10(0x28, 0, 8), 4096, true, nil)
	c.wait(tk)
	if tk.status != statusGood || len(tk.in) != 4096 {
		t.Fatalf("read after: status 0x%x, %d bytes", tk.status, len(tk.in))
	}
}

// TestSessionWriteBudget: a session cannot make the target hold more than
// maxSessionWriteBuf of Data-Out buffers by announcing large writes and
// not sending their data: past the budget a write gets TASK SET FULL. The
// budget comes back when such writes are aborted, and after it a write
// with its data lands.
func TestSessionWriteBudget(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	vol := newMemVolume(64 << 20)
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1), keys: []keyValue{{"InitialR2T", "Yes"}, {"ImmediateData", "No"}}}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	const n = maxSessionWriteBuf/maxTransfer + 3
	held := map[uint32]bool{}
	full := 0
	for i := range n {
		tk := c.submit(rw16(0x8a, uint64(i)*(maxTransfer/512), maxTransfer/512), maxTransfer, false, make([]byte, 512))
		held[tk.itt] = true
	}
	// Each write gets an R2T (its buffer is held) or TASK SET FULL.
	for seen := 0; seen < n; seen++ {
		p := c.mustRecv()
		switch {
		case p.opcode() == opR2T:
		case p.opcode() == opSCSIResp && p.bhs[3] == statusTaskSetFull:
			full++
			delete(held, p.itt())
			delete(c.tasks, p.itt())
		default:
			t.Fatalf("opcode 0x%x status 0x%x", p.opcode(), p.bhs[3])
		}
	}
	if len(held) != maxSessionWriteBuf/maxTransfer || full != 3 {
		t.Fatalf("%d writes hold a buffer and %d got TASK SET FULL, want %d and 3", len(held), full, maxSessionWriteBuf/maxTransfer)
	}
	// ABORT TASK SET: the held writes end, and so does their budget.
	r := newPDU(opTMFReq)
	r.bhs[0] |= 0x40
	r.bhs[1] = 0x80 | tmfAbortTaskSet
	r.put32(16, c.nextITT())
	r.put32(20, reservedTag)
	r.put32(24, c.cmdSN)
	c.send(r)
	for {
		p := c.mustRecv()
		if p.opcode() == opTMFResp {
			if p.bhs[2] != tmfComplete {
				t.Fatalf("ABORT TASK SET: response %d", p.bhs[2])
			}
			break
		}
	}
	for itt := range held {
		delete(c.tasks, itt)
	}
	// A full-size write with its data now goes through.
	data := bytes.Repeat([]byte{0x5a}, maxTransfer)
	tk := c.submit(rw16(0x8a, 0, maxTransfer/512), maxTransfer, false, data)
	c.wait(tk)
	if tk.status != statusGood {
		t.Fatalf("write after the abort: status 0x%x sense %x", tk.status, tk.sense)
	}
	if !bytes.Equal(vol.snapshot()[:maxTransfer], data) {
		t.Fatal("the write did not land")
	}
}
