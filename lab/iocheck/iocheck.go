// Package iocheck is the verifying disk workload of the lab's stay-up test
// OS. It writes blocks that carry (node, sequence number, slot, checksum)
// to a scratch area of the node's own disk, reads every block back, and
// re-reads an older block after each write to catch a write that was
// acknowledged and later lost (a restart of the target that dropped it).
// The device is opened with O_DIRECT|O_DSYNC so that every block really
// crosses the wire to the iSCSI target and back.
//
// It prints one line a second,
//
//	BMI-LAB-IO t=<s> writes=<n> reads=<n> errors=<n> mismatches=<n> max_stall_ms=<n> window_stall_ms=<n>
//
// where max_stall_ms is the longest single I/O so far (an I/O still in
// progress counts with its age) and window_stall_ms the longest within the
// last line's second; and on each error or mismatch a line
//
//	BMI-LAB-IO-ERROR t=<s> op=<write|read|verify> slot=<n> offset=<bytes> ...
//
// naming the block. When it ends it prints BMI-LAB-IO-END with the totals.
package iocheck

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"sync"
	"time"
)

// BlockSize is the size of one verified block.
const BlockSize = 4096

// magic opens every block the workload writes.
var magic = [8]byte{'B', 'M', 'I', 'I', 'O', 'v', '1', 0}

// maxNode is the longest node name a block carries.
const maxNode = 32

// Block layout: magic[8] node[32] seq[8] slot[8] fill... crc32c[4] at the end.
const (
	offNode = 8
	offSeq  = offNode + maxNode
	offSlot = offSeq + 8
	offFill = offSlot + 8
	offCRC  = BlockSize - 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Device is the scratch area's backing: the disk, opened for direct I/O.
type Device interface {
	io.ReaderAt
	io.WriterAt
}

// Config says what to check and how.
type Config struct {
	// Node is written into every block (at most 32 bytes).
	Node string
	// Offset and Size delimit the scratch area in bytes; both are multiples
	// of BlockSize and Size holds at least two blocks.
	Offset, Size int64
	// Duration ends the run; 0 runs until the context ends.
	Duration time.Duration
	// Pause is the wait between two write+read+verify rounds (default
	// 10 ms: on an emulated machine the workload must leave CPU to the
	// kernel's iSCSI initiator).
	Pause time.Duration
	// Every is the report interval (default 1 s).
	Every time.Duration
	// Seed seeds the choice of the older block re-read after each write.
	Seed uint64
}

// Stats are the totals of a run.
type Stats struct {
	Writes, Reads, Errors, Mismatches int64
	// MaxStall is the longest single I/O.
	MaxStall time.Duration
}

// Checker runs the workload on one device.
type Checker struct {
	cfg Config
	dev Device
	out io.Writer

	mu       sync.Mutex
	st       Stats
	window   time.Duration
	opStart  time.Time // zero when no I/O is in progress
	start    time.Time
	expected []uint64 // per slot: the sequence number last written there (0: never)
}

// New checks cfg and returns a Checker that writes its lines to out.
func New(cfg Config, dev Device, out io.Writer) (*Checker, error) {
	switch {
	case cfg.Node == "" || len(cfg.Node) > maxNode:
		return nil, fmt.Errorf("iocheck: node name %q: want 1 to %d bytes", cfg.Node, maxNode)
	case cfg.Offset < 0 || cfg.Offset%BlockSize != 0:
		return nil, fmt.Errorf("iocheck: offset %d is not a non-negative multiple of %d", cfg.Offset, BlockSize)
	case cfg.Size < 2*BlockSize || cfg.Size%BlockSize != 0:
		return nil, fmt.Errorf("iocheck: size %d is not a multiple of %d holding at least two blocks", cfg.Size, BlockSize)
	case cfg.Duration < 0:
		return nil, fmt.Errorf("iocheck: negative duration %v", cfg.Duration)
	}
	if cfg.Pause <= 0 {
		cfg.Pause = 10 * time.Millisecond
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	return &Checker{cfg: cfg, dev: dev, out: out, expected: make([]uint64, cfg.Size/BlockSize)}, nil
}

// Encode fills b (BlockSize bytes) with the block of node, seq and slot.
func Encode(b []byte, node string, seq, slot uint64) {
	copy(b, magic[:])
	clear(b[offNode : offNode+maxNode])
	copy(b[offNode:], node)
	binary.BigEndian.PutUint64(b[offSeq:], seq)
	binary.BigEndian.PutUint64(b[offSlot:], slot)
	x := seq*0x9e3779b97f4a7c15 ^ slot
	for i := offFill; i+8 <= offCRC; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[:offCRC], castagnoli))
}

// Decode checks b's checksum and magic and returns what it carries.
func Decode(b []byte) (node string, seq, slot uint64, err error) {
	if len(b) != BlockSize {
		return "", 0, 0, fmt.Errorf("block of %d bytes", len(b))
	}
	if !bytes.Equal(b[:8], magic[:]) {
		if bytes.Count(b, []byte{0}) == len(b) {
			return "", 0, 0, errors.New("block is all zeroes")
		}
		return "", 0, 0, errors.New("no block magic")
	}
	if got, want := binary.BigEndian.Uint32(b[offCRC:]), crc32.Checksum(b[:offCRC], castagnoli); got != want {
		return "", 0, 0, fmt.Errorf("checksum %08x, want %08x", got, want)
	}
	return string(bytes.TrimRight(b[offNode:offNode+maxNode], "\x00")), binary.BigEndian.Uint64(b[offSeq:]),
		binary.BigEndian.Uint64(b[offSlot:]), nil
}

// Run runs the workload until the context ends or Duration has passed and
// returns the totals. An I/O error or a mismatch is counted and reported,
// and the workload goes on: the point is to see whether the disk comes
// back, not to stop at the first problem.
func (c *Checker) Run(ctx context.Context) Stats {
	if c.cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Duration)
		defer cancel()
	}
	c.start = time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(c.cfg.Every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c.report()
			}
		}
	}()
	c.loop(ctx)
	close(done)
	wg.Wait()
	c.report()
	st := c.stats()
	fmt.Fprintf(c.out, "BMI-LAB-IO-END t=%d writes=%d reads=%d errors=%d mismatches=%d max_stall_ms=%d\n",
		c.secs(), st.Writes, st.Reads, st.Errors, st.Mismatches, st.MaxStall.Milliseconds())
	return st
}

func (c *Checker) loop(ctx context.Context) {
	// One buffer, aligned for O_DIRECT, for writing and one for reading.
	wbuf, rbuf := alignedBlock(), alignedBlock()
	rng := rand.New(rand.NewPCG(c.cfg.Seed, 0x626d69))
	slots := uint64(len(c.expected))
	var seq uint64
	for ctx.Err() == nil {
		seq++
		slot := (seq - 1) % slots
		Encode(wbuf, c.cfg.Node, seq, slot)
		if err := c.io("write", slot, func() error { return writeFull(c.dev, wbuf, c.off(slot)) }); err == nil {
			c.mu.Lock()
			c.st.Writes++
			c.expected[slot] = seq
			c.mu.Unlock()
		} else {
			// The block's content is unknown now: the write may or may not
			// have reached the disk. Forget it rather than report a false
			// mismatch later.
			c.mu.Lock()
			c.expected[slot] = 0
			c.mu.Unlock()
		}
		c.verify(slot, rbuf)
		// An older block written earlier, possibly before a restart of
		// the target: it must still hold what was acknowledged.
		if seq > 1 {
			c.verify(rng.Uint64N(min(seq-1, slots)), rbuf)
		}
		select {
		case <-ctx.Done():
		case <-time.After(c.cfg.Pause):
		}
	}
}

// verify reads slot and compares it with what was last written there.
func (c *Checker) verify(slot uint64, buf []byte) {
	c.mu.Lock()
	want := c.expected[slot]
	c.mu.Unlock()
	if want == 0 {
		return
	}
	if err := c.io("read", slot, func() error { return readFull(c.dev, buf, c.off(slot)) }); err != nil {
		return
	}
	c.mu.Lock()
	c.st.Reads++
	c.mu.Unlock()
	node, seq, gotSlot, err := Decode(buf)
	switch {
	case err != nil:
		c.mismatch(slot, "%v, want node=%s seq=%d", err, c.cfg.Node, want)
	case node != c.cfg.Node || seq != want || gotSlot != slot:
		c.mismatch(slot, "holds node=%s seq=%d slot=%d, want node=%s seq=%d slot=%d", node, seq, gotSlot, c.cfg.Node, want, slot)
	}
}

func (c *Checker) off(slot uint64) int64 { return c.cfg.Offset + int64(slot)*BlockSize }

// io times one I/O and counts and reports its error.
func (c *Checker) io(op string, slot uint64, f func() error) error {
	c.mu.Lock()
	c.opStart = time.Now()
	c.mu.Unlock()
	err := f()
	c.mu.Lock()
	d := time.Since(c.opStart)
	c.opStart = time.Time{}
	c.st.MaxStall = max(c.st.MaxStall, d)
	c.window = max(c.window, d)
	if err != nil {
		c.st.Errors++
	}
	c.mu.Unlock()
	if err != nil {
		fmt.Fprintf(c.out, "BMI-LAB-IO-ERROR t=%d op=%s slot=%d offset=%d err=%q\n", c.secs(), op, slot, c.off(slot), err.Error())
	}
	return err
}

func (c *Checker) mismatch(slot uint64, format string, args ...any) {
	c.mu.Lock()
	c.st.Mismatches++
	c.mu.Unlock()
	fmt.Fprintf(c.out, "BMI-LAB-IO-ERROR t=%d op=verify slot=%d offset=%d mismatch: %s\n", c.secs(), slot, c.off(slot),
		fmt.Sprintf(format, args...))
}

func (c *Checker) secs() int64 { return int64(time.Since(c.start) / time.Second) }

func (c *Checker) stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// report prints the line of the past interval.
func (c *Checker) report() {
	c.mu.Lock()
	st, w := c.st, c.window
	if !c.opStart.IsZero() {
		age := time.Since(c.opStart)
		st.MaxStall, w = max(st.MaxStall, age), max(w, age)
	}
	c.window = 0
	c.mu.Unlock()
	fmt.Fprintf(c.out, "BMI-LAB-IO t=%d writes=%d reads=%d errors=%d mismatches=%d max_stall_ms=%d window_stall_ms=%d\n",
		c.secs(), st.Writes, st.Reads, st.Errors, st.Mismatches, st.MaxStall.Milliseconds(), w.Milliseconds())
}

func writeFull(d Device, b []byte, off int64) error {
	n, err := d.WriteAt(b, off)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	return err
}

func readFull(d Device, b []byte, off int64) error {
	n, err := d.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// alignedBlock returns BlockSize bytes aligned to BlockSize, as O_DIRECT
// needs.
func alignedBlock() []byte {
	b := make([]byte, 2*BlockSize)
	var addr uintptr
	if len(b) > 0 {
		addr = uintptrOf(b)
	}
	skip := (BlockSize - int(addr%BlockSize)) % BlockSize
	return b[skip : skip+BlockSize : skip+BlockSize]
}
