package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestBoots: a boot starts at the first DISCOVER, retries within Restart
// are the same boot, it completes at the first login to its disk, and a
// login without a boot (a running node logging in again) counts nothing.
func TestBoots(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	b := m.Boots
	b.Now = func() time.Time { return now }
	steps := []struct {
		do            func() bool
		want          bool
		started, done float64
	}{
		{func() bool { return b.Started("iqn.a") }, true, 1, 0},
		{func() bool { now = now.Add(5 * time.Second); return b.Started("iqn.a") }, false, 1, 0}, // iPXE's own DHCP
		{func() bool { now = now.Add(7 * time.Second); _, ok := b.LoggedIn("iqn.a"); return ok }, true, 1, 1},
		{func() bool { _, ok := b.LoggedIn("iqn.a"); return ok }, false, 1, 1}, // the OS logs in again
		{func() bool { return b.Started("iqn.a") }, true, 2, 1},
		{func() bool { now = now.Add(20 * time.Minute); return b.Started("iqn.a") }, true, 3, 1}, // stuck boot: a new one
	}
	for i, s := range steps {
		if got := s.do(); got != s.want {
			t.Fatalf("step %d: %v, want %v", i, got, s.want)
		}
		if st, d := value(t, b.started), value(t, b.completed); st != s.started || d != s.done {
			t.Fatalf("step %d: started %v completed %v, want %v %v", i, st, d, s.started, s.done)
		}
	}
	var h dto.Metric
	if err := b.duration.Write(&h); err != nil || h.Histogram.GetSampleCount() != 1 || h.Histogram.GetSampleSum() != 12 {
		t.Fatalf("boot duration: %v, %v; want one boot of 12 s", h.Histogram, err)
	}
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.Counter.GetValue()
}
