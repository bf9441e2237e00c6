//go:build ceph_preview

package iscsi

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/service/ceph"
	"github.com/bmi-go/bmi/service/logging"
)

// TestCephGoesAwayMidIO stops the cluster under an exported RBD image while
// an initiator has commands in flight: they end in CHECK CONDITION (MEDIUM
// ERROR) within the op timeout, never a hang or a crash, the session stays
// up, and once the cluster is back the same session reads the data written
// before the outage. It needs a cluster of its own (the shared one cannot
// be stopped).
func TestCephGoesAwayMidIO(t *testing.T) {
	t.Parallel()
	c := cephtest.Stoppable(t)
	ctx := context.Background()
	const opTimeout = 3 * time.Second
	s, err := ceph.Dial(ctx, ceph.Config{Conf: c.ConfPath(), Pool: c.Pool(), OpTimeout: opTimeout}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Create(ctx, "outage", 8<<20); err != nil {
		t.Fatal(err)
	}
	im, err := s.Open(ctx, "outage")
	if err != nil {
		t.Fatal(err)
	}
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(9), Volume: im})
	cl := dial(t, addr)
	if st, _ := cl.login(loginOpts{target: testIQN(9)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	before := bytes.Repeat([]byte("before the outage "), 4096)[:64<<10]
	waitTasks := func(what string, limit time.Duration, ts ...*ctask) {
		t.Helper()
		done := make(chan struct{})
		go func() { cl.wait(ts...); close(done) }()
		select {
		case <-done:
		case <-time.After(limit):
			t.Fatalf("%s: no answer after %v", what, limit)
		}
	}
	w := cl.submit(rw10(0x2a, 0, 128), uint32(len(before)), false, before)
	sync := cl.submit([]byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, false, nil) // SYNCHRONIZE CACHE(10)
	waitTasks("write before the outage", time.Minute, w, sync)
	if w.status != statusGood || sync.status != statusGood {
		t.Fatalf("write before the outage: 0x%x, sync 0x%x", w.status, sync.status)
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var ts []*ctask
	for i := range 8 { // reads of blocks never read before: librbd must ask the OSD
		ts = append(ts, cl.submit(rw10(0x28, uint32(1024+i*128), 128), 64<<10, true, nil))
	}
	ts = append(ts, cl.submit(rw10(0x2a, 4096, 128), 64<<10, false, before))
	ts = append(ts, cl.submit([]byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, false, nil))
	waitTasks("I/O with the cluster down", 10*opTimeout, ts...)
	answered := time.Since(t0).Round(time.Millisecond)
	failed := 0
	for _, tk := range ts {
		if tk.status == statusCheckCondition && len(tk.sense) > 2 && tk.sense[2]&0xf == senseMediumError {
			failed++
		} else if tk.status != statusGood {
			t.Errorf("%v: sense %x, want GOOD or CHECK CONDITION with MEDIUM ERROR", tk, tk.sense)
		}
	}
	t.Logf("%d commands answered %v after the cluster stopped, %d with MEDIUM ERROR", len(ts), answered, failed)
	if failed == 0 {
		t.Error("no command failed with the cluster down")
	}

	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := cl.submit(rw10(0x28, 0, 128), 64<<10, true, nil)
		waitTasks("read after the restart", time.Minute, r)
		if r.status == statusGood {
			if !bytes.Equal(r.in, before) {
				t.Fatal("data written before the outage reads back differently")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reads still fail 2 minutes after the restart: 0x%x %x", r.status, r.sense)
		}
		time.Sleep(time.Second)
	}
	cl.logout()
	if err := tg.Unexport(ctx, testIQN(9)); err != nil { // closes the image
		t.Fatal(err)
	}
}
