package iocheck

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// memDev is a device in memory whose faults a test switches on.
type memDev struct {
	mu      sync.Mutex
	b       []byte
	dropN   int // the next n writes succeed without writing (a lost write)
	dropAt  int // the write of this number (1 is the first) succeeds without writing
	writes  int
	failN   int // the next n I/Os fail
	corrupt int64
}

func (d *memDev) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failN > 0 {
		d.failN--
		return 0, errors.New("input/output error")
	}
	d.writes++
	if d.dropN > 0 || d.writes == d.dropAt {
		d.dropN = max(d.dropN-1, 0)
		return len(p), nil
	}
	return copy(d.b[off:], p), nil
}

func (d *memDev) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failN > 0 {
		d.failN--
		return 0, errors.New("input/output error")
	}
	n := copy(p, d.b[off:])
	if d.corrupt >= off && d.corrupt < off+int64(n) {
		p[d.corrupt-off] ^= 0xff
	}
	return n, nil
}

// syncBuf is a bytes.Buffer safe for the reporter and the loop.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestEncodeDecode(t *testing.T) {
	b := make([]byte, BlockSize)
	Encode(b, "node-01", 42, 7)
	node, seq, slot, err := Decode(b)
	if err != nil || node != "node-01" || seq != 42 || slot != 7 {
		t.Fatalf("Decode = %q %d %d %v", node, seq, slot, err)
	}
	for _, tc := range []struct {
		name string
		mut  func([]byte)
		want string
	}{
		{"zeroes", func(b []byte) { clear(b) }, "all zeroes"},
		{"magic", func(b []byte) { b[0] = 'X' }, "no block magic"},
		{"payload bit", func(b []byte) { b[1000] ^= 1 }, "checksum"},
		{"sequence", func(b []byte) { b[offSeq+7] ^= 1 }, "checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := bytes.Clone(b)
			tc.mut(c)
			if _, _, _, err := Decode(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	line := regexp.MustCompile(`BMI-LAB-IO t=\d+ writes=(\d+) reads=(\d+) errors=(\d+) mismatches=(\d+) max_stall_ms=\d+ window_stall_ms=\d+`)
	for _, tc := range []struct {
		name             string
		fault            func(*memDev)
		errors, mismatch bool
		errLine          string
	}{
		{name: "clean"},
		{name: "lost first write", fault: func(d *memDev) { d.dropN = 1 }, mismatch: true, errLine: "op=verify slot=0 offset=65536 mismatch: block is all zeroes"},
		// The 10th write goes to slot 1, which holds the 2nd: the old block
		// is intact, only its sequence number tells the write was lost.
		{name: "lost overwrite", fault: func(d *memDev) { d.dropAt = 10 }, mismatch: true, errLine: "slot=1 offset=69632 mismatch: holds node=n1 seq=2 slot=1, want node=n1 seq=10"},
		{name: "I/O errors", fault: func(d *memDev) { d.failN = 3 }, errors: true, errLine: "op=write slot=0"},
		{name: "corrupt block", fault: func(d *memDev) { d.corrupt = 4096 + 123 }, mismatch: true, errLine: "offset=69632 mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &memDev{b: make([]byte, 64*BlockSize)}
			// The fault starts after the first round so that blocks exist.
			var out syncBuf
			c, err := New(Config{Node: "n1", Offset: 16 * BlockSize, Size: 8 * BlockSize, Duration: 250 * time.Millisecond,
				Pause: time.Millisecond, Every: 50 * time.Millisecond}, d, &out)
			if err != nil {
				t.Fatal(err)
			}
			if tc.fault != nil {
				tc.fault(d)
				if d.corrupt != 0 {
					d.corrupt += 16 * BlockSize
				}
			}
			st := c.Run(context.Background())
			if st.Writes < 8 || st.Reads < 8 {
				t.Fatalf("too little I/O: %+v", st)
			}
			if (st.Errors > 0) != tc.errors || (st.Mismatches > 0) != tc.mismatch {
				t.Fatalf("stats %+v: want errors %v, mismatches %v\n%s", st, tc.errors, tc.mismatch, out.String())
			}
			s := out.String()
			if !line.MatchString(s) || !strings.Contains(s, "BMI-LAB-IO-END ") {
				t.Fatalf("no report or end line:\n%s", s)
			}
			if tc.errLine != "" && !strings.Contains(s, "BMI-LAB-IO-ERROR") {
				t.Fatalf("no error line:\n%s", s)
			}
			if tc.errLine != "" && !strings.Contains(s, tc.errLine) {
				t.Fatalf("error lines do not name the block (%q):\n%s", tc.errLine, s)
			}
			// Nothing outside the scratch area was touched.
			if bytes.Count(d.b[:16*BlockSize], []byte{0}) != 16*BlockSize || bytes.Count(d.b[24*BlockSize:], []byte{0}) != 40*BlockSize {
				t.Fatal("the workload wrote outside its scratch area")
			}
		})
	}
}

func TestStallReported(t *testing.T) {
	d := &slowDev{memDev: memDev{b: make([]byte, 4*BlockSize)}, delay: 300 * time.Millisecond}
	var out syncBuf
	c, err := New(Config{Node: "n1", Size: 4 * BlockSize, Duration: 500 * time.Millisecond, Every: 100 * time.Millisecond}, d, &out)
	if err != nil {
		t.Fatal(err)
	}
	st := c.Run(context.Background())
	if st.MaxStall < 300*time.Millisecond {
		t.Fatalf("max stall %v, want >= 300ms", st.MaxStall)
	}
	// A line printed while the slow write was in progress already shows it.
	if !regexp.MustCompile(`window_stall_ms=(1|2)\d\d\b`).MatchString(out.String()) {
		t.Fatalf("no report showed the I/O in progress:\n%s", out.String())
	}
}

type slowDev struct {
	memDev
	delay time.Duration
	once  sync.Once
}

func (d *slowDev) WriteAt(p []byte, off int64) (int, error) {
	d.once.Do(func() { time.Sleep(d.delay) })
	return d.memDev.WriteAt(p, off)
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []Config{
		{Node: "", Size: 8192},
		{Node: strings.Repeat("x", 33), Size: 8192},
		{Node: "n", Offset: 100, Size: 8192},
		{Node: "n", Size: 4096},
		{Node: "n", Size: 8193},
		{Node: "n", Size: 8192, Duration: -1},
	} {
		if _, err := New(cfg, &memDev{}, &bytes.Buffer{}); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// FuzzDecode: Decode never panics on any input, and every block Encode
// writes decodes to what was encoded.
func FuzzDecode(f *testing.F) {
	b := make([]byte, BlockSize)
	Encode(b, "node-01", 1, 2)
	f.Add(b, "node-01", uint64(1), uint64(2))
	f.Add(make([]byte, BlockSize), "n", uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, raw []byte, node string, seq, slot uint64) {
		_, _, _, _ = Decode(raw)
		node = strings.TrimRight(node, "\x00")
		if node == "" || len(node) > maxNode {
			return
		}
		b := make([]byte, BlockSize)
		Encode(b, node, seq, slot)
		n, s, sl, err := Decode(b)
		if err != nil || n != node || s != seq || sl != slot {
			t.Fatalf("Decode(Encode(%q, %d, %d)) = %q %d %d %v", node, seq, slot, n, s, sl, err)
		}
	})
}
