package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTP counts the answers of the boot HTTP server (iPXE scripts and
// binaries).
type HTTP struct {
	requests *prometheus.CounterVec
}

func newHTTP() *HTTP {
	return &HTTP{requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_boot_http_requests_total",
		Help: "Boot HTTP requests by kind (script, binary) and status code."}, []string{"kind", "code"})}
}

// Wrap counts every answer of h.
func (m *HTTP) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		kind := "binary"
		if strings.HasSuffix(r.URL.Path, ".ipxe") {
			kind = "script"
		}
		m.requests.WithLabelValues(kind, strconv.Itoa(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code    int
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.code, w.written = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

// Boots follows boots end to end: a boot starts at a node's DHCP DISCOVER
// and completes at the first successful iSCSI login to the disk it boots
// (iPXE's sanboot). Boots are keyed by the disk's target IQN, which no
// series carries.
type Boots struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Restart is how long a boot may take before a new DISCOVER starts
	// another one (retries and iPXE's own DHCP are part of the first); 0
	// means 15 minutes.
	Restart time.Duration

	steps     *prometheus.CounterVec
	started   prometheus.Counter
	completed prometheus.Counter
	duration  prometheus.Histogram

	mu      sync.Mutex
	pending map[string]time.Time // target IQN -> start of its boot
}

// maxPending bounds the boots followed at once.
const maxPending = 65536

func newBoots() *Boots {
	return &Boots{
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_boot_steps_total",
			Help: "Boot timeline steps recorded (dhcp-discover, dhcp-offer, dhcp-ack, ipxe-binary-served, ipxe-script-served)."},
			[]string{"step"}),
		started: prometheus.NewCounter(prometheus.CounterOpts{Name: "bmi_boots_started_total",
			Help: "Boots started: a node with a boot config sent a DHCP DISCOVER and no boot of its disk was under way."}),
		completed: prometheus.NewCounter(prometheus.CounterOpts{Name: "bmi_boots_completed_total",
			Help: "Boots completed: the first iSCSI login to the node's disk after its boot started."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bmi_boot_duration_seconds",
			Help:    "Time from a boot's DHCP DISCOVER to the first iSCSI login to its disk.",
			Buckets: []float64{1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600}}),
		pending: map[string]time.Time{},
	}
}

func (b *Boots) collectors() []prometheus.Collector {
	return []prometheus.Collector{b.steps, b.started, b.completed, b.duration}
}

func (b *Boots) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// Step counts one timeline step (a boot.Step value).
func (b *Boots) Step(step string) { b.steps.WithLabelValues(step).Inc() }

// Started notes that the node booting target sent a DISCOVER; it reports
// whether this started a boot.
func (b *Boots) Started(target string) bool {
	restart := b.Restart
	if restart <= 0 {
		restart = 15 * time.Minute
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.pending[target]; ok && now.Sub(t) < restart {
		return false
	}
	if len(b.pending) >= maxPending {
		for k, t := range b.pending {
			if now.Sub(t) >= restart {
				delete(b.pending, k)
			}
		}
		if len(b.pending) >= maxPending {
			return false
		}
	}
	b.pending[target] = now
	b.started.Inc()
	return true
}

// LoggedIn notes a successful login to target; it reports whether that
// completed a boot, and how long the boot took.
func (b *Boots) LoggedIn(target string) (time.Duration, bool) {
	now := b.now()
	b.mu.Lock()
	t, ok := b.pending[target]
	delete(b.pending, target)
	b.mu.Unlock()
	if !ok {
		return 0, false
	}
	d := now.Sub(t)
	b.completed.Inc()
	b.duration.Observe(d.Seconds())
	return d, true
}
