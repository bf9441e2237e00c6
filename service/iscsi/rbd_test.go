//go:build ceph_preview

package iscsi

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/ceph"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/procenv"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		// Benchmarks measure the target as bmid serve runs it: with
		// procenv's Go runtime settings, which only apply at exec.
		if err := procenv.Apply(); err != nil {
			fmt.Fprintf(os.Stderr, "re-execute with GODEBUG=%s: %v\n", procenv.Setting, err)
			os.Exit(1)
		}
	}
	os.Exit(cephtest.Main(m))
}

// rbdImage creates a test image of size bytes and returns the store, its
// name and the open image; the image is removed when the test ends.
func rbdImage(t *testing.T, size uint64) (*ceph.Store, string, string, string, *ceph.Image) {
	t.Helper()
	conf, pool, prefix := cephtest.Pool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := ceph.Dial(ctx, ceph.Config{Conf: conf, Pool: pool, OpTimeout: 30 * time.Second}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	name := prefix + "disk"
	if err := s.Create(ctx, name, size); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Remove(ctx, name); err != nil {
			t.Errorf("remove %s: %v", name, err)
		}
		s.Close()
	})
	im, err := s.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return s, conf, pool, name, im
}

// TestRBDTarget exports a real RBD image: writes from our initiator with
// several commands in flight land in the image (checked with `rbd
// export`), libiscsi reads its capacity through CHAP, iscsi-test-cu
// passes, and Unexport closes the image so that it can be removed.
func TestRBDTarget(t *testing.T) {
	s, conf, pool, name, im := rbdImage(t, 64<<20)
	tg, addr := startTarget(t, Config{RequireCHAP: true})
	iqn := "iqn.2026-11.org.bmi:test." + strings.ToLower(strings.TrimSuffix(name, "-disk"))
	if !ValidIQN(iqn) {
		iqn = testIQN(42)
	}
	mustExport(t, tg, Export{IQN: iqn, Volume: im, CHAP: nodeCHAP, Initiators: []string{initiatorIQN, initiatorIQN + "-2", "iqn.2026-11.org.test:init"}})

	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: iqn, chap: nodeCHAP, keys: []keyValue{{"MaxRecvDataSegmentLength", "65536"}}}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	var ts []*ctask
	for i := range 16 { // 16 × 512 KiB in flight
		off := i * 512 * 1024
		ts = append(ts, c.submit(rw10(0x2a, uint32(off/512), 1024), 512*1024, false, want[off:off+512*1024]))
	}
	c.wait(ts...)
	for _, tk := range ts {
		if tk.status != statusGood {
			t.Fatalf("write: %v sense %x", tk, tk.sense)
		}
	}
	sync := c.submit([]byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, false, nil)
	c.wait(sync)
	if sync.status != statusGood {
		t.Fatalf("SYNCHRONIZE CACHE: 0x%x", sync.status)
	}
	rd := c.submit(rw10(0x28, 0, 16384), 8<<20, true, nil)
	c.wait(rd)
	if rd.status != statusGood || !bytes.Equal(rd.in, want) {
		t.Fatalf("read back: status 0x%x, equal %v", rd.status, bytes.Equal(rd.in, want))
	}
	c.logout()

	out, err := cephtest.RBD(conf, pool, "export", name, "-")
	if err != nil {
		t.Fatalf("rbd export: %v", err)
	}
	if len(out) != 64<<20 || out[:8<<20] != string(want) || strings.Trim(out[8<<20:], "\x00") != "" {
		t.Fatalf("rbd export differs from what the initiator wrote (%d bytes)", len(out))
	}

	if testenv.InCI() || hasCommand("iscsi-readcapacity16") {
		got, err := runTool(t, "iscsi-readcapacity16", "-i", initiatorIQN, url(addr, iqn, nodeCHAP))
		if err != nil || !strings.Contains(got, "Total size:67108864") {
			t.Fatalf("iscsi-readcapacity16: %v\n%s", err, got)
		}
		testenv.RequireCommand(t, "iscsi-test-cu", "libiscsi-bin")
		writeConformance(t, "RBD image (service/ceph)", runConformance(t, addr, iqn, nodeCHAP))
	}

	if err := tg.Unexport(context.Background(), iqn); err != nil {
		t.Fatal(err)
	}
	// Removal works only once the image is closed.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Remove(ctx, name); err != nil {
		t.Fatalf("remove after unexport: %v", err)
	}
	if err := s.Create(ctx, name, 1<<20); err != nil { // for the cleanup's removal
		t.Fatal(err)
	}
}

// TestRBDWriteSame: WRITE SAME through librbd's write-same and
// write-zeroes, checked byte for byte with `rbd export` of the image
// (after SYNCHRONIZE CACHE) after every case.
func TestRBDWriteSame(t *testing.T) {
	const size = 20 << 20
	_, conf, pool, name, im := rbdImage(t, size)
	rng := rand.New(rand.NewPCG(5, 6))
	init := make([]byte, size)
	for i := range init {
		init[i] = byte(rng.Uint32())
	}
	if _, err := im.WriteAt(init, 0); err != nil {
		t.Fatal(err)
	}
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(43), Volume: im, CHAP: nodeCHAP})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(43), chap: nodeCHAP}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	read := func() []byte {
		sync := c.submit([]byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, false, nil)
		c.wait(sync)
		if sync.status != statusGood {
			t.Fatalf("SYNCHRONIZE CACHE: 0x%x", sync.status)
		}
		out, err := cephtest.RBD(conf, pool, "export", name, "-")
		if err != nil || len(out) != size {
			t.Fatalf("rbd export: %v (%d bytes)", err, len(out))
		}
		return []byte(out)
	}
	checkWriteSame(t, c, size, read)
	c.logout()
	if err := tg.Unexport(context.Background(), testIQN(43)); err != nil {
		t.Fatal(err)
	}
}
