package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDashboard: every bmi_ series the Grafana dashboard (docs/) queries
// exists: registered here (every series touched once), or the API's
// (service/apiserver/metrics.go).
func TestDashboard(t *testing.T) {
	dash, err := os.ReadFile("../../docs/grafana-bmi.json")
	if err != nil {
		t.Fatal(err)
	}
	api, err := os.ReadFile("../apiserver/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchISCSI(func() ISCSIStats { return ISCSIStats{} }); err != nil {
		t.Fatal(err)
	}
	m.ISCSI.Login(false, "ok")
	m.ISCSI.Command("read", "good", 512, time.Millisecond)
	m.ISCSI.Abort("abort_task", 1)
	m.DHCP.Reply("offer")
	m.DHCP.Ignored("malformed")
	m.TFTP.Transfer("ok", 1)
	m.HTTP.requests.WithLabelValues("script", "200").Inc()
	m.Boots.Step("dhcp-ack")
	m.Boots.Started("t")
	m.Boots.LoggedIn("t")
	m.Ops.Started("import")
	m.Ops.Ended("import", "done", time.Second)
	m.Ops.Recovered("retry", "done")
	m.Ceph.CephError("timeout")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	names := regexp.MustCompile(`bmi_[a-z_]+`).FindAllString(string(dash), -1)
	if len(names) < 20 {
		t.Fatalf("the dashboard queries %d series, want its 20 or more", len(names))
	}
	for _, n := range names {
		base := n
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suf)
		}
		if !have[base] && !strings.Contains(string(api), `"`+base+`"`) {
			t.Errorf("the dashboard queries %s, which no collector exports", n)
		}
	}
}
