package iscsi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// memVolume is an in-memory Volume for the tests; failAfter makes I/O fail.
type memVolume struct {
	mu      sync.RWMutex
	data    []byte
	flushes int
	discard int
	closed  bool
	fail    bool
}

func newMemVolume(size int) *memVolume { return &memVolume{data: make([]byte, size)} }

var errInjected = errors.New("injected I/O error")

func (m *memVolume) ReadAt(p []byte, off int64) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.fail {
		return 0, errInjected
	}
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memVolume) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return 0, errInjected
	}
	if off+int64(len(p)) > int64(len(m.data)) {
		return 0, io.EOF
	}
	return copy(m.data[off:], p), nil
}

func (m *memVolume) Size() uint64 { return uint64(len(m.data)) }

func (m *memVolume) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flushes++
	return nil
}

func (m *memVolume) Discard(off, n uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off+n > uint64(len(m.data)) {
		return io.EOF
	}
	clear(m.data[off : off+n])
	m.discard++
	return nil
}

func (m *memVolume) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// fillRandom fills the volume with pseudo-random bytes from seed (before
// it is exported) and returns a copy of them.
func (m *memVolume) fillRandom(seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range m.data {
		m.data[i] = byte(rng.Uint32())
	}
	return m.snapshot()
}

// snapshot is a copy of the volume's bytes.
func (m *memVolume) snapshot() []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]byte(nil), m.data...)
}

func (m *memVolume) setFail(b bool) {
	m.mu.Lock()
	m.fail = b
	m.mu.Unlock()
}

func (m *memVolume) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// freeAddr returns a loopback address with a free port.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// startTarget serves a Target on a free loopback port until the test ends.
func startTarget(t testing.TB, cfg Config) (*Target, string) {
	t.Helper()
	addr := freeAddr(t)
	cfg.Listen = []string{addr}
	tg, err := New(cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tg.Serve(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("target did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
		tg.Close()
	})
	return tg, addr
}

func mustExport(t testing.TB, tg *Target, e Export) {
	t.Helper()
	if err := tg.Export(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

func testIQN(n int) string { return fmt.Sprintf("iqn.2026-11.org.bmi:test.disk%d", n) }

func t0() context.Context { return context.Background() }

func hasCommand(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// diskIQN builds a disk's target name the way service/core names them (core.IQN)
// for the tests: "<prefix>:<uid>.<disk id>", e.g.
// "iqn.2026-11.org.bmi:3f2a.node7-os". prefix is the configured iqn_prefix,
// uid the BMI instance's identity and disk the disk's id; all are lower-cased.
func diskIQN(prefix, uid, disk string) (string, error) {
	name := strings.ToLower(prefix + ":" + uid + "." + disk)
	if uid == "" || disk == "" || !ValidIQN(name) {
		return "", fault.Errorf(fault.Invalid, "invalid target name %q", name)
	}
	return name, nil
}
