package iscsi

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"
)

// TestAsyncWrites: with a volume that writes asynchronously, plain WRITEs
// are served without a worker and land exactly where asked; the writes
// that must reach the medium first (FUA), that are not plain (EDTL other
// than the transfer length) or that fail the checks (beyond the end) are
// executed as before; a failed asynchronous write is CHECK CONDITION,
// MEDIUM ERROR, WRITE ERROR; and a COMPARE AND WRITE waits for the writes
// in flight (the LU's shared lock), so it compares what they wrote.
func TestAsyncWrites(t *testing.T) {
	tg, addr := startTarget(t, Config{QueueDepth: 16, Workers: 2})
	const size = 4 << 20
	vol := newAsyncVolume(size)
	want := vol.fillRandom(5)
	rng := rand.New(rand.NewPCG(5, 5))
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	for round := range 20 {
		var ts []*ctask
		for i := range 8 {
			// disjoint ranges within a round: 8 slots of 64 KiB... of the round's MiB
			blocks := 1 + rng.IntN(128)
			lba := (round%4)*2048 + i*256 + rng.IntN(256-blocks+1)
			data := make([]byte, blocks*512)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			copy(want[lba*512:], data)
			cdb := rw10(0x2a, uint32(lba), uint16(blocks))
			if rng.IntN(2) == 0 { // WRITE(16)
				cdb = make([]byte, 16)
				cdb[0] = 0x8a
				binary.BigEndian.PutUint64(cdb[2:], uint64(lba))
				binary.BigEndian.PutUint32(cdb[10:], uint32(blocks))
			}
			ts = append(ts, c.submit(cdb, uint32(len(data)), false, data))
		}
		c.wait(ts...)
		for i, tk := range ts {
			if tk.status != statusGood {
				t.Fatalf("round %d write %d: status 0x%x sense %x", round, i, tk.status, tk.sense)
			}
		}
	}
	if !bytes.Equal(vol.snapshot(), want) {
		t.Fatal("the volume does not hold what was written")
	}
	if n := vol.wstarted.Load(); n != 20*8 {
		t.Errorf("%d writes went through WriteAsync, want %d", n, 20*8)
	}

	before := vol.wstarted.Load()
	fua := rw10(0x2a, 16, 1)
	fua[1] |= 0x08
	tk := c.submit(fua, 512, false, bytes.Repeat([]byte{0xf1}, 512))
	c.wait(tk)
	if tk.status != statusGood || !bytes.Equal(vol.snapshot()[16*512:17*512], bytes.Repeat([]byte{0xf1}, 512)) {
		t.Errorf("FUA write: status 0x%x, or not written", tk.status)
	}
	// EDTL shorter than the transfer: overflow, the worker writes what came
	tk = c.submit(rw10(0x2a, 32, 2), 512, false, bytes.Repeat([]byte{0xf2}, 512))
	c.wait(tk)
	if tk.status != statusGood || tk.flags&0x04 == 0 || tk.residual != 512 {
		t.Errorf("overflowing write: status 0x%x flags 0x%x residual %d", tk.status, tk.flags, tk.residual)
	}
	tk = c.submit(rw10(0x2a, size/512, 1), 512, false, make([]byte, 512))
	c.wait(tk)
	if tk.status != statusCheckCondition || len(tk.sense) < 14 || tk.sense[2]&0xf != 0x05 || tk.sense[12] != 0x21 {
		t.Errorf("write beyond the end: status 0x%x sense %x", tk.status, tk.sense)
	}
	if n := vol.wstarted.Load(); n != before {
		t.Errorf("%d writes that are not plain went through WriteAsync", n-before)
	}

	vol.setFail(true)
	tk = c.submit(rw10(0x2a, 0, 8), 4096, false, make([]byte, 4096))
	c.wait(tk)
	vol.setFail(false)
	if tk.status != statusCheckCondition || len(tk.sense) < 14 || tk.sense[2]&0xf != 0x03 || tk.sense[12] != 0x0c || tk.sense[13] != 0 {
		t.Errorf("failed asynchronous write: status 0x%x sense %x, want MEDIUM ERROR 0c/00", tk.status, tk.sense)
	}

	// A write held in flight, then a COMPARE AND WRITE of the same block
	// that expects the held write's data: it must wait for it.
	vol.hold()
	newData := bytes.Repeat([]byte{0xab}, 512)
	w := c.submit(rw10(0x2a, 100, 1), 512, false, newData)
	waitFor(t, func() bool { return vol.wstarted.Load() > before+1 })
	caw := make([]byte, 16)
	caw[0] = 0x89
	binary.BigEndian.PutUint64(caw[2:], 100)
	caw[13] = 1
	cw := c.submit(caw, 1024, false, append(append([]byte(nil), newData...), bytes.Repeat([]byte{0xcd}, 512)...))
	time.Sleep(50 * time.Millisecond) // the COMPARE AND WRITE reaches the target, and waits
	vol.release()
	c.wait(w, cw)
	if w.status != statusGood || cw.status != statusGood {
		t.Fatalf("held write 0x%x, COMPARE AND WRITE 0x%x sense %x; want both GOOD (the compare after the write)", w.status, cw.status, cw.sense)
	}
	if got := vol.snapshot()[100*512 : 101*512]; !bytes.Equal(got, bytes.Repeat([]byte{0xcd}, 512)) {
		t.Errorf("block 100 holds %x..., want the COMPARE AND WRITE's 0xcd", got[:4])
	}
	c.logout()
}
