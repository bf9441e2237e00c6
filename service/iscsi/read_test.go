package iscsi

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestReadBuffersRecycled: READ data comes from recycled buffers (bufPool).
// Two sessions read many extents of many sizes at once and each answer
// is exactly the volume's bytes; a failed read sends no data at all, so
// a recycled buffer's old contents (another read's, perhaps another
// tenant's) never reach an initiator.
func TestReadBuffersRecycled(t *testing.T) {
	tg, addr := startTarget(t, Config{QueueDepth: 16, Workers: 8})
	const size = 4 << 20
	vol := newMemVolume(size)
	want := vol.fillRandom(7)
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	var wg sync.WaitGroup
	errs := make(chan string, 2)
	for s := range 2 {
		c := dial(t, addr)
		if st, _ := c.login(loginOpts{target: testIQN(1), initiator: fmt.Sprintf("iqn.2026-11.org.test:reader%d", s)}); st != 0 {
			t.Fatalf("login: 0x%04x", st)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(s), 1))
			for range 60 {
				var ts []*ctask
				var offs []int
				for range 8 {
					blocks := 1 + rng.IntN(512)
					lba := rng.IntN(size/512 - blocks)
					ts = append(ts, c.submit(rw10(0x28, uint32(lba), uint16(blocks)), uint32(blocks*512), true, nil))
					offs = append(offs, lba*512)
				}
				c.wait(ts...)
				for i, tk := range ts {
					if tk.status != statusGood || !bytes.Equal(tk.in, want[offs[i]:offs[i]+len(tk.in)]) {
						errs <- "a read returned other bytes than the volume's"
						return
					}
				}
			}
			c.logout()
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}

	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	vol.setFail(true)
	for range 20 {
		tk := c.submit(rw10(0x28, 0, 256), 256*512, true, nil)
		c.wait(tk)
		if tk.status != statusCheckCondition || !bytes.Equal(tk.in, make([]byte, len(tk.in))) {
			t.Fatalf("failed read: status 0x%x, data sent: %v", tk.status, !bytes.Equal(tk.in, make([]byte, len(tk.in))))
		}
	}
}

// TestBufClass: size classes cover every size up to the largest pooled
// one, and larger buffers are not pooled.
func TestBufClass(t *testing.T) {
	for _, tc := range []struct{ n, class int }{
		{1, 0}, {4096, 0}, {4097, 1}, {8192, 1}, {1 << 20, 8}, {1<<20 + 1, 9}, {16 << 20, 12}, {16<<20 + 1, -1},
	} {
		if c := bufClass(tc.n); c != tc.class {
			t.Errorf("bufClass(%d) = %d, want %d", tc.n, c, tc.class)
		}
		b, release := getBuf(tc.n)
		if len(b) != tc.n {
			t.Errorf("getBuf(%d): %d bytes", tc.n, len(b))
		}
		release()
	}
}

// TestInitiatorStopsReading: an initiator queues far more read data than
// the connection holds and then neither reads nor sends. Whoever writes
// for the session blocks on the full connection; the pinger must still
// notice the silence, drop the session, and Unexport must not hang.
func TestInitiatorStopsReading(t *testing.T) {
	tg, addr := startTarget(t, Config{NopInterval: 200 * time.Millisecond, NopTimeout: time.Second})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20)})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login status 0x%04x", st)
	}
	for range 64 { // 64 MiB of Data-In, never read
		c.submit(rw10(0x28, 0, 2048), 1<<20, true, nil)
	}
	waitFor(t, func() bool { return sessionsOf(t, tg) == 0 })
	unexportWithin(t, tg, testIQN(1), 15*time.Second)
}
