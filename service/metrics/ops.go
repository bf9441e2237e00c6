package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Ops counts operations as the journal sees them: every operation, from
// the API or recovered after a crash, ends done, failed or rolled back.
type Ops struct {
	ops        *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	recoveries *prometheus.CounterVec
}

func newOps() *Ops {
	return &Ops{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_operations_total",
			Help: "Journaled operations that reached a state, by kind and state (started, done, failed, rolled_back)."},
			[]string{"kind", "state"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bmi_operation_duration_seconds",
			Help:    "Time from an operation's start to its end (done, failed or rolled back), by kind.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}, []string{"kind"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_operation_recoveries_total",
			Help: "Operations finished or rolled back by recovery: trigger startup (unfinished at start) or retry (failed, retried), by the state reached."},
			[]string{"trigger", "state"}),
	}
}

// Started counts an operation that started.
func (m *Ops) Started(kind string) { m.ops.WithLabelValues(kind, "started").Inc() }

// Ended counts an operation that reached state after d.
func (m *Ops) Ended(kind, state string, d time.Duration) {
	m.ops.WithLabelValues(kind, state).Inc()
	m.duration.WithLabelValues(kind).Observe(d.Seconds())
}

// Recovered counts an operation that recovery brought to state.
func (m *Ops) Recovered(trigger, state string) { m.recoveries.WithLabelValues(trigger, state).Inc() }
