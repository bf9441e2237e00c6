package iscsi

import (
	"encoding/binary"
	"github.com/bmi-go/bmi/service/logging"
	"sync"
	"testing"
)

// TestEngineConcurrent runs every kind of command the initiators send
// through gotgt's engine from many goroutines at once: with -race this
// proves the engine, as we drive it, is safe to run concurrently.
func TestEngineConcurrent(t *testing.T) {
	vol := newMemVolume(4 << 20)
	u, err := newLogicalUnit(t0(), testIQN(1), "race-test", deviceIDs.Add(1), vol, nil, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer u.release("race-test")
	unmap := make([]byte, 24)
	binary.BigEndian.PutUint16(unmap[0:], 22)
	binary.BigEndian.PutUint16(unmap[2:], 16)
	binary.BigEndian.PutUint64(unmap[8:], 100)
	binary.BigEndian.PutUint32(unmap[16:], 8)
	cmds := []scsiRequest{
		{cdb: rw10(0x28, 0, 8), edtl: 4096, read: true},
		{cdb: rw10(0x2a, 16, 8), edtl: 4096, write: true, out: make([]byte, 4096)},
		{cdb: []byte{0x12, 0, 0, 0, 96, 0}, edtl: 96, read: true},                          // INQUIRY
		{cdb: []byte{0x12, 1, 0xb0, 0, 64, 0}, edtl: 64, read: true},                       // Block Limits
		{cdb: []byte{0x12, 1, 0x83, 0, 255, 0}, edtl: 255, read: true},                     // Device Identification
		{cdb: []byte{0x1a, 0, 0x3f, 0, 255, 0}, edtl: 255, read: true},                     // MODE SENSE(6)
		{cdb: []byte{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, edtl: 8, read: true},                // READ CAPACITY(10)
		{cdb: []byte{0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, edtl: 256, read: true},        // REPORT LUNS
		{cdb: []byte{0x00, 0, 0, 0, 0, 0}},                                                 // TEST UNIT READY
		{cdb: []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}},                                     // SYNCHRONIZE CACHE(10)
		{cdb: []byte{0x1e, 0, 0, 0, 1, 0}},                                                 // PREVENT ALLOW MEDIUM REMOVAL
		{cdb: []byte{0x16, 0, 0, 0, 0, 0}},                                                 // RESERVE(6)
		{cdb: []byte{0x17, 0, 0, 0, 0, 0}},                                                 // RELEASE(6)
		{cdb: []byte{0x5e, 0, 0, 0, 0, 0, 0, 0, 255, 0}, edtl: 255, read: true},            // PERSISTENT RESERVE IN
		{cdb: []byte{0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}, edtl: 24, write: true, out: unmap}, // UNMAP
	}
	var wg sync.WaitGroup
	for g := range 8 {
		nx := &nexus{}
		nx.itn.ID[0] = byte(g + 1)
		nx.luInfo.Lu = u.lu
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				r := cmds[(i+g)%len(cmds)]
				r.nexus = nx
				if r.out != nil {
					r.out = append([]byte(nil), r.out...)
				}
				res := u.execute(&r)
				if res.status == 0xff {
					t.Errorf("command 0x%02x: engine failure", r.cdb[0])
				}
			}
		}()
	}
	wg.Wait()
	if vol.flushes == 0 || vol.discard == 0 {
		t.Fatalf("flushes %d, discards %d: SYNCHRONIZE CACHE / UNMAP did not reach the volume", vol.flushes, vol.discard)
	}
}

// TestResiduals checks the iSCSI residual rules around the engine.
func TestResiduals(t *testing.T) {
	vol := newMemVolume(1 << 20)
	for i := range vol.data {
		vol.data[i] = 'a'
	}
	u, err := newLogicalUnit(t0(), testIQN(2), "residual-test", deviceIDs.Add(1), vol, nil, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer u.release("residual-test")
	b := func(c byte, n int) []byte {
		out := make([]byte, n)
		for i := range out {
			out[i] = c
		}
		return out
	}
	cases := map[string]struct {
		req                 scsiRequest
		data                int
		residual            uint32
		overflow, underflow bool
		written             int // bytes of 'b' at offset 0
	}{
		"read exact":          {req: scsiRequest{cdb: rw10(0x28, 0, 2), edtl: 1024, read: true}, data: 1024},
		"read overflow":       {req: scsiRequest{cdb: rw10(0x28, 0, 2), edtl: 512, read: true}, data: 512, residual: 512, overflow: true},
		"read underflow":      {req: scsiRequest{cdb: rw10(0x28, 0, 1), edtl: 1000, read: true}, data: 512, residual: 488, underflow: true},
		"inquiry short alloc": {req: scsiRequest{cdb: []byte{0x12, 0, 0, 0, 36, 0}, edtl: 255, read: true}, data: 36, residual: 219, underflow: true},
		"write underflow":     {req: scsiRequest{cdb: rw10(0x2a, 0, 1), edtl: 1024, write: true, out: b('b', 1024)}, residual: 512, underflow: true, written: 512},
		"write overflow":      {req: scsiRequest{cdb: rw10(0x2a, 0, 2), edtl: 512, write: true, out: b('b', 512)}, residual: 512, overflow: true, written: 512},
		"write no data":       {req: scsiRequest{cdb: rw10(0x2a, 0, 1), edtl: 0, write: true}, residual: 512, overflow: true},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			for i := range 2048 {
				vol.data[i] = 'a'
			}
			res := u.execute(&c.req)
			if res.status != statusGood || len(res.data) != c.data || res.residual != c.residual ||
				res.overflow != c.overflow || res.underflow != c.underflow {
				t.Fatalf("got status 0x%x data %d residual %d over %v under %v", res.status, len(res.data), res.residual, res.overflow, res.underflow)
			}
			for i := range 2048 {
				want := byte('a')
				if i < c.written {
					want = 'b'
				}
				if vol.data[i] != want {
					t.Fatalf("byte %d = %q, want %q: a write landed where it should not", i, vol.data[i], want)
				}
			}
		})
	}
}
