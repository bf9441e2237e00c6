//go:build ceph_preview

package ceph

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// TestClusterGoesAway stops a cluster under an open store and image: every
// call fails with fault.ErrUnavailable after the op timeout instead of
// hanging, and once one has, management calls fail at once; after a
// restart the answering hook runs and the same store works again at once,
// with the data unchanged. It needs a cluster of its own (the shared one cannot be
// stopped).
func TestClusterGoesAway(t *testing.T) {
	t.Parallel()
	c := cephtest.Stoppable(t)
	ctx := context.Background()

	const timeout = 3 * time.Second
	s, err := Dial(ctx, Config{Conf: c.ConfPath(), Pool: c.Pool(), OpTimeout: timeout}, logging.Discard())
	mustOK(t, err)
	defer s.Close()
	back := make(chan struct{}, 1)
	s.SetAnsweringHook(func() { back <- struct{}{} })
	mustOK(t, s.Create(ctx, "outage", 8<<20))
	img, err := s.Open(ctx, "outage")
	mustOK(t, err)
	_, err = img.WriteAt(pattern(4096, 1), 0)
	mustOK(t, err)
	mustOK(t, img.Flush())

	mustOK(t, c.Stop(ctx))
	t.Logf("cluster stopped")
	for name, call := range map[string]func() error{
		// librbd's cache acknowledges the write; the flush must fail
		"write and flush": func() error {
			if _, err := img.WriteAt(pattern(4096, 2), 4096); err != nil {
				return err
			}
			return img.Flush()
		},
		"stat": func() error { _, err := s.Stat(ctx, "outage"); return err },
		// the read starts at once (librbd must not make the caller wait)
		// and fails when the op timeout passes
		"async read": func() error {
			ch := make(chan error, 1)
			t0 := time.Now()
			if err := img.ReadAsync(make([]byte, 4096), 2<<20, func(_ int, err error) { ch <- err }); err != nil {
				return err
			}
			if d := time.Since(t0); d > time.Second {
				t.Errorf("ReadAsync waited %v for a cluster that is down", d)
			}
			return <-ch
		},
		"dial": func() error {
			s2, err := Dial(ctx, Config{Conf: c.ConfPath(), Pool: c.Pool(), OpTimeout: timeout}, nil)
			if err == nil {
				s2.Close()
			}
			return err
		},
	} {
		t0 := time.Now()
		err := call()
		d := time.Since(t0)
		if fault.Of(err) != fault.Unavailable {
			t.Errorf("%s with the cluster down: %v (kind %s), want unavailable", name, err, fault.Of(err))
		}
		t.Logf("%s with the cluster down: %v after %v", name, err, d.Round(time.Millisecond))
		if d > 4*timeout {
			t.Errorf("%s took %v with an op timeout of %v", name, d, timeout)
		}
	}

	// Once a call has waited the op timeout in vain, management calls
	// fail at once, saying so, until the cluster answers a probe.
	if down, since := s.Unreachable(); !down {
		t.Error("the store does not count the cluster as unreachable after calls timed out")
	} else {
		t.Logf("unreachable since %v", since.Format(time.RFC3339Nano))
	}
	t0 := time.Now()
	_, err = s.Stat(ctx, "outage")
	if d := time.Since(t0); fault.Of(err) != fault.Unavailable || !strings.Contains(err.Error(), "ceph is unreachable") || d > time.Second {
		t.Errorf("stat while the cluster is known down: %v (kind %s) after %v, want unavailable at once, naming the outage", err, fault.Of(err), d)
	}

	mustOK(t, c.Start(ctx))
	t.Logf("cluster restarted")
	select {
	case <-back:
		t.Logf("answering hook ran")
	case <-time.After(2 * time.Minute):
		t.Fatal("the answering hook did not run within 2 min of the restart")
	}
	// the same store and image work again, the store at once
	if _, err := s.Stat(ctx, "outage"); err != nil {
		t.Fatalf("stat once the cluster answers again: %v", err)
	}
	if down, _ := s.Unreachable(); down {
		t.Error("the store still counts the cluster as unreachable")
	}
	deadline := time.Now().Add(time.Minute)
	got := make([]byte, 8192)
	_, err = img.ReadAt(got, 0)
	mustOK(t, err)
	if string(got[:4096]) != string(pattern(4096, 1)) {
		t.Error("data written before the outage is gone")
	}
	mustOK(t, img.Close())
	// the OSD keeps the watch of the handle from before the outage until
	// it times out (osd_client_watch_timeout, 30 s): removal is refused
	// as busy meanwhile
	for {
		err := s.Remove(ctx, "outage")
		if err == nil {
			break
		}
		if fault.Of(err) != fault.Conflict || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
	}
}
