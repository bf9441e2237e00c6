package iscsi

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// WRITE SAME checked byte for byte: TestWriteSameMemory against the
// in-memory volume, TestRBDWriteSame (rbd_test.go) against an RBD image
// through librbd's write-same and write-zeroes.

// writeSame10 and writeSame16 build the CDBs; flags is byte 1 (UNMAP 0x08,
// ANCHOR 0x10, NDOB 0x01).
func writeSame10(flags byte, lba uint32, blocks uint16) []byte {
	c := make([]byte, 10)
	c[0], c[1] = opWriteSame10, flags
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}

func writeSame16(flags byte, lba uint64, blocks uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = opWriteSame16, flags
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], blocks)
	return c
}

// wsCase is one WRITE SAME and what it must do to the volume.
type wsCase struct {
	cdb     []byte
	block   []byte // Data-Out (nil: none)
	lba     uint64 // first block it must write
	blocks  uint64 // how many (0: it must write nothing)
	pattern []byte // what each block must hold after (nil: block)
	status  byte
	asc     uint16 // of a CHECK CONDITION
}

// writeSameCases are the cases for a volume of size bytes (at least 4 MiB).
func writeSameCases(size uint64) map[string]wsCase {
	end := size >> blockShift
	pat := func(seed uint64) []byte {
		b := make([]byte, 1<<blockShift)
		r := rand.New(rand.NewPCG(seed, 7))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	zero := make([]byte, 1<<blockShift)
	return map[string]wsCase{
		"10: one block":                 {cdb: writeSame10(0, 3, 1), block: pat(1), lba: 3, blocks: 1},
		"10: 300 blocks, unaligned":     {cdb: writeSame10(0, 77, 300), block: pat(2), lba: 77, blocks: 300},
		"10: UNMAP with data writes it": {cdb: writeSame10(0x08, 1000, 50), block: pat(3), lba: 1000, blocks: 50},
		"10: UNMAP with zeros":          {cdb: writeSame10(0x08, 1201, 2049), block: zero, lba: 1201, blocks: 2049},
		"16: 4 MiB + 1 block":           {cdb: writeSame16(0, 4000, 8193), block: pat(4), lba: 4000, blocks: 8193},
		"16: zeros without UNMAP":       {cdb: writeSame16(0, 9, 17), block: zero, lba: 9, blocks: 17},
		"16: UNMAP with zeros at end":   {cdb: writeSame16(0x08, end-513, 513), block: zero, lba: end - 513, blocks: 513},
		"16: NDOB writes zeros":         {cdb: writeSame16(0x01, 20000, 100), lba: 20000, blocks: 100, pattern: zero},
		"16: 0 blocks runs to the end":  {cdb: writeSame16(0, end-5, 0), block: pat(5), lba: end - 5, blocks: 5},
		"10: last block":                {cdb: writeSame10(0, uint32(end-1), 1), block: pat(6), lba: end - 1, blocks: 1},
		"bad: past the end":             {cdb: writeSame16(0, end-1, 2), block: pat(7), status: statusCheckCondition, asc: ascLBAOutOfRange},
		"bad: LBA past the end":         {cdb: writeSame10(0, uint32(end), 1), block: pat(7), status: statusCheckCondition, asc: ascLBAOutOfRange},
		"bad: over MAXIMUM WRITE SAME":  {cdb: writeSame16(0, 0, maxWriteSameBlocks+1), block: pat(7), status: statusCheckCondition, asc: ascInvalidFieldInCDB},
		"bad: ANCHOR":                   {cdb: writeSame16(0x18, 0, 1), block: zero, status: statusCheckCondition, asc: ascInvalidFieldInCDB},
		"bad: WRPROTECT":                {cdb: writeSame10(0x20, 0, 1), block: pat(7), status: statusCheckCondition, asc: ascInvalidFieldInCDB},
		"bad: LBDATA":                   {cdb: writeSame10(0x02, 0, 1), block: pat(7), status: statusCheckCondition, asc: ascInvalidFieldInCDB},
		"bad: half a block of Data-Out": {cdb: writeSame10(0x08, 0, 1), block: pat(7)[:256], status: statusCheckCondition, asc: ascInvalidFieldInCDB},
		"bad: two blocks of Data-Out":   {cdb: writeSame16(0, 0, 1), block: append(pat(7), pat(8)...), status: statusCheckCondition, asc: ascInvalidFieldInCDB},
		"bad: NDOB with Data-Out":       {cdb: writeSame16(0x01, 0, 1), block: pat(7), status: statusCheckCondition, asc: ascInvalidFieldInCDB},
	}
}

// checkWriteSame runs every case through c, one at a time, and compares
// the whole volume (read) with what it must hold after each.
func checkWriteSame(t *testing.T, c *client, size uint64, read func() []byte) {
	t.Helper()
	want := read()
	for name, tc := range writeSameCases(size) {
		tk := c.submit(tc.cdb, uint32(len(tc.block)), false, tc.block)
		c.wait(tk)
		if tk.status != tc.status {
			t.Fatalf("%s: WRITE SAME %x = status 0x%x sense %x, want 0x%x", name, tc.cdb, tk.status, tk.sense, tc.status)
		}
		if tc.status == statusCheckCondition {
			if len(tk.sense) < 14 || uint16(tk.sense[12])<<8|uint16(tk.sense[13]) != tc.asc {
				t.Fatalf("%s: sense %x, want ASC 0x%04x", name, tk.sense, tc.asc)
			}
		}
		p := tc.pattern
		if p == nil {
			p = tc.block
		}
		for b := tc.lba; b < tc.lba+tc.blocks; b++ {
			copy(want[b<<blockShift:], p)
		}
		got := read()
		if !bytes.Equal(got, want) {
			i := 0
			for i < len(got) && got[i] == want[i] {
				i++
			}
			t.Fatalf("%s: the volume differs from what WRITE SAME %x must leave, first at byte %d (block %d)", name, tc.cdb, i, i>>blockShift)
		}
	}
}

// TestWriteSameMemory: WRITE SAME (10, 16; UNMAP, NDOB, 0 blocks) writes
// exactly its range of the in-memory volume (through the target's write
// loop: the volume has no write-same of its own), and refused forms
// change nothing.
func TestWriteSameMemory(t *testing.T) {
	const size = 20 << 20
	vol := newMemVolume(size)
	vol.fillRandom(11)
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	checkWriteSame(t, c, size, vol.snapshot)
	c.logout()
}

// TestRefusedCommands: the commands declared unsupported in the
// conformance run are refused as invalid operation codes, and a COMPARE
// AND WRITE with a wrong Data-Out size is refused; none writes anything.
func TestRefusedCommands(t *testing.T) {
	vol := newMemVolume(1 << 20)
	want := vol.fillRandom(3)
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	caw := make([]byte, 16)
	caw[0], caw[13] = opCompareAndWrite, 1
	block := make([]byte, 512)
	cases := map[string]struct {
		cdb []byte
		out []byte
		asc uint16
	}{
		"SANITIZE overwrite":      {[]byte{0x48, 0x01, 0, 0, 0, 0, 0, 0, 8, 0}, make([]byte, 8), ascInvalidOpcode},
		"EXTENDED COPY":           {[]byte{0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil, ascInvalidOpcode},
		"WRITE ATOMIC (16)":       {[]byte{0x9c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}, block, ascInvalidOpcode},
		"READ DEFECT DATA (10)":   {[]byte{0x37, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil, ascInvalidOpcode},
		"CAW with half its data":  {caw, block, ascInvalidFieldInCDB},
		"CAW with too much data":  {caw, make([]byte, 3*512), ascInvalidFieldInCDB},
		"WRITE SAME of 2 blocks":  {writeSame10(0, 0, 1), make([]byte, 1024), ascInvalidFieldInCDB},
		"WRITE SAME without data": {writeSame10(0, 0, 1), nil, ascInvalidFieldInCDB},
		"UNMAP past the end":      {unmapCDB(0, 40), unmapList([2]uint64{0, 8}, [2]uint64{2047, 2}), ascLBAOutOfRange},
		"UNMAP of 17 descriptors": {unmapCDB(0, 8+17*16), unmapList(make([][2]uint64, 17)...), ascInvalidFieldInParams},
		"UNMAP with ANCHOR":       {unmapCDB(1, 24), unmapList([2]uint64{0, 8}), ascInvalidFieldInCDB},
		"UNMAP list too short":    {unmapCDB(0, 4), []byte{0, 2, 0, 0}, ascParamListLength},
	}
	for name, tc := range cases {
		tk := c.submit(tc.cdb, uint32(len(tc.out)), false, tc.out)
		c.wait(tk)
		if tk.status != statusCheckCondition || senseASC(tk.sense) != tc.asc {
			t.Errorf("%s: status 0x%x sense %x, want CHECK CONDITION with ASC 0x%04x", name, tk.status, tk.sense, tc.asc)
		}
	}
	if !bytes.Equal(vol.snapshot(), want) {
		t.Fatal("a refused command changed the volume")
	}
}

// unmapCDB builds UNMAP with an ANCHOR bit and a parameter list length.
func unmapCDB(anchor byte, plen uint16) []byte {
	c := make([]byte, 10)
	c[0], c[1] = opUnmap, anchor
	binary.BigEndian.PutUint16(c[7:], plen)
	return c
}

// unmapList builds UNMAP's parameter list of (LBA, blocks) descriptors.
func unmapList(ds ...[2]uint64) []byte {
	b := make([]byte, 8+16*len(ds))
	binary.BigEndian.PutUint16(b, uint16(6+16*len(ds)))
	binary.BigEndian.PutUint16(b[2:], uint16(16*len(ds)))
	for i, d := range ds {
		binary.BigEndian.PutUint64(b[8+16*i:], d[0])
		binary.BigEndian.PutUint32(b[16+16*i:], uint32(d[1]))
	}
	return b
}
