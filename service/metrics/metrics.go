package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the collectors of every plane, registered on one registry.
type Metrics struct {
	// ISCSI observes the iSCSI target (iscsi.Observer).
	ISCSI *ISCSI
	// DHCP observes the DHCP server (dhcpd.Observer).
	DHCP *DHCP
	// TFTP observes the TFTP server (tftpd.Observer).
	TFTP *TFTP
	// HTTP counts the boot HTTP server's answers.
	HTTP *HTTP
	// Boots tracks boots from DHCP to the disk's first iSCSI login.
	Boots *Boots
	// Ops counts operations and recoveries.
	Ops *Ops
	// Ceph counts failed Ceph calls (ceph.ErrorObserver).
	Ceph *Ceph

	reg prometheus.Registerer
}

// New creates every collector and registers it on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{reg: reg, ISCSI: newISCSI(), DHCP: newDHCP(), TFTP: newTFTP(), HTTP: newHTTP(),
		Boots: newBoots(), Ops: newOps(), Ceph: newCeph()}
	var cs []prometheus.Collector
	cs = append(cs, m.ISCSI.collectors()...)
	cs = append(cs, m.DHCP.replies, m.DHCP.ignored, m.TFTP.transfers, m.TFTP.bytes, m.HTTP.requests)
	cs = append(cs, m.Boots.collectors()...)
	cs = append(cs, m.Ops.ops, m.Ops.duration, m.Ops.recoveries, m.Ceph.errors)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ISCSIStats is what WatchISCSI reads at every scrape.
type ISCSIStats struct {
	Targets, Sessions, InFlight int
}

// WatchISCSI registers the gauges of the target's state, read from stats
// at every scrape (stats must be safe for concurrent use).
func (m *Metrics) WatchISCSI(stats func() ISCSIStats) error {
	gauges := []struct {
		name, help string
		get        func(ISCSIStats) int
	}{
		{"bmi_iscsi_targets", "Exported iSCSI targets.", func(s ISCSIStats) int { return s.Targets }},
		{"bmi_iscsi_sessions", "Open iSCSI sessions (discovery sessions not counted).", func(s ISCSIStats) int { return s.Sessions }},
		{"bmi_iscsi_commands_in_flight", "SCSI commands received and not yet answered.", func(s ISCSIStats) int { return s.InFlight }},
	}
	for _, g := range gauges {
		get := g.get
		c := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help},
			func() float64 { return float64(get(stats())) })
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// ISCSI implements iscsi.Observer.
type ISCSI struct {
	logins   *prometheus.CounterVec
	commands *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	aborts   *prometheus.CounterVec
	aborted  *prometheus.CounterVec
}

func newISCSI() *ISCSI {
	return &ISCSI{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_iscsi_logins_total",
			Help: "iSCSI login attempts by session type (normal, discovery) and result (ok, auth_failed, redirected, refused)."},
			[]string{"type", "result"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_iscsi_commands_total",
			Help: "SCSI commands answered, by operation (read, write, other) and SCSI status (or aborted)."},
			[]string{"op", "status"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_iscsi_data_bytes_total",
			Help: "Data moved by SCSI READ and WRITE commands, by operation."}, []string{"op"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bmi_iscsi_command_duration_seconds",
			Help:    "Time from a SCSI command's arrival to its answer being queued, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}, []string{"op"}),
		aborts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_iscsi_task_aborts_total",
			Help: "Task management functions that abort commands, by function."}, []string{"function"}),
		aborted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_iscsi_aborted_commands_total",
			Help: "Commands aborted by task management functions, by function."}, []string{"function"}),
	}
}

func (m *ISCSI) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.logins, m.commands, m.bytes, m.latency, m.aborts, m.aborted}
}

// Login implements iscsi.Observer.
func (m *ISCSI) Login(discovery bool, result string) {
	typ := "normal"
	if discovery {
		typ = "discovery"
	}
	m.logins.WithLabelValues(typ, result).Inc()
}

// Command implements iscsi.Observer.
func (m *ISCSI) Command(op, status string, bytes int, d time.Duration) {
	m.commands.WithLabelValues(op, status).Inc()
	if bytes > 0 {
		m.bytes.WithLabelValues(op).Add(float64(bytes))
	}
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

// Abort implements iscsi.Observer.
func (m *ISCSI) Abort(function string, n int) {
	m.aborts.WithLabelValues(function).Inc()
	m.aborted.WithLabelValues(function).Add(float64(n))
}

// DHCP implements dhcpd.Observer.
type DHCP struct {
	replies, ignored *prometheus.CounterVec
}

func newDHCP() *DHCP {
	return &DHCP{
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_dhcp_replies_total",
			Help: "DHCP answers sent, by message type (offer, ack, nak)."}, []string{"type"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_dhcp_ignored_total",
			Help: "DHCP packets left unanswered, by reason."}, []string{"reason"}),
	}
}

// Reply implements dhcpd.Observer.
func (m *DHCP) Reply(messageType string) { m.replies.WithLabelValues(messageType).Inc() }

// Ignored implements dhcpd.Observer.
func (m *DHCP) Ignored(reason string) { m.ignored.WithLabelValues(reason).Inc() }

// TFTP implements tftpd.Observer.
type TFTP struct {
	transfers *prometheus.CounterVec
	bytes     prometheus.Counter
}

func newTFTP() *TFTP {
	return &TFTP{
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_tftp_transfers_total",
			Help: "TFTP read requests by result (ok, refused, failed)."}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "bmi_tftp_sent_bytes_total",
			Help: "Bytes sent by TFTP transfers."}),
	}
}

// Transfer implements tftpd.Observer.
func (m *TFTP) Transfer(result string, n int64) {
	m.transfers.WithLabelValues(result).Inc()
	m.bytes.Add(float64(n))
}

// Ceph implements ceph.ErrorObserver.
type Ceph struct {
	errors *prometheus.CounterVec
}

func newCeph() *Ceph {
	return &Ceph{errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bmi_ceph_errors_total",
		Help: "Failed Ceph calls, by kind: timeout (no answer within ceph.op_timeout) or the error's fault kind."},
		[]string{"kind"})}
}

// CephError implements ceph.ErrorObserver.
func (m *Ceph) CephError(kind string) { m.errors.WithLabelValues(kind).Inc() }
