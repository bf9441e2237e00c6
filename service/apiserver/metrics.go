package apiserver

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus collectors.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	ops      *prometheus.CounterVec
	opTime   *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bmi_api_requests_total", Help: "API requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bmi_api_request_duration_seconds", Help: "API request latency by route and method.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"route", "method"}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bmi_api_operations_total", Help: "Operations run through the API by kind and outcome (ok or an error kind).",
		}, []string{"kind", "outcome"}),
		opTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bmi_api_operation_duration_seconds", Help: "Duration of operations run through the API by kind.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.ops, m.opTime} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) request(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

func (m *metrics) op(kind, outcome string, d time.Duration) {
	m.ops.WithLabelValues(kind, outcome).Inc()
	m.opTime.WithLabelValues(kind).Observe(d.Seconds())
}
