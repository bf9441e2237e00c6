package main

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/logging"
)

// bootWatch follows a node's events during a real boot and checks, after
// it, that they and /metrics tell of the boot.
type bootWatch struct {
	t      *testing.T
	url    string
	events chan api.Event
	before string // /metrics before the boot
	cancel context.CancelFunc
}

// watchBoot starts following node's events (as the project's user) and
// takes /metrics before the boot.
func watchBoot(t *testing.T, env map[string]string, node string) *bootWatch {
	t.Helper()
	c, err := client.New(env["BMI_URL"], env["HIL_USERNAME"], logging.Secret(env["HIL_PASSWORD"]))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.Follow(ctx, api.EventFilter{Project: env["BMI_PROJECT"], Node: node})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w := &bootWatch{t: t, url: env["BMI_URL"], events: make(chan api.Event, 1024), cancel: cancel}
	go func() {
		defer close(w.events)
		defer s.Close()
		for {
			ev, err := s.Next()
			if err != nil {
				return
			}
			w.events <- ev
		}
	}()
	w.before = w.scrape()
	return w
}

func (w *bootWatch) scrape() string {
	w.t.Helper()
	res, err := http.Get(w.url + "/metrics")
	if err != nil {
		w.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// sum adds the values of the series of name whose labels contain all of
// labels.
func sum(body, name string, labels ...string) float64 {
	var total float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); ok && err == nil {
			total += v
		}
	}
	return total
}

// check waits for the boot's events up to the disk's login and checks
// that the boot's series moved; it returns a /metrics excerpt.
func (w *bootWatch) check(secrets ...string) string {
	w.t.Helper()
	defer w.cancel()
	var steps []string
	deadline := time.After(2 * time.Minute)
	for done := false; !done; {
		select {
		case ev, ok := <-w.events:
			if !ok {
				w.t.Fatalf("the event stream ended; steps so far %v", steps)
			}
			steps = append(steps, ev.Step)
			done = ev.Step == api.BootCompleted
		case <-deadline:
			w.t.Fatalf("no %s event within 2 minutes after the boot; steps %v", api.BootCompleted, steps)
		}
	}
	w.t.Logf("boot events: %v", steps)
	for _, want := range []string{"dhcp-discover", "dhcp-offer", "dhcp-ack", "ipxe-script-served"} {
		if !strings.Contains(strings.Join(steps, " "), want) {
			w.t.Errorf("boot events %v lack %s", steps, want)
		}
	}
	after := w.scrape()
	var excerpt []string
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"bmi_boots_started_total", nil},
		{"bmi_boots_completed_total", nil},
		{"bmi_boot_duration_seconds_count", nil},
		{"bmi_dhcp_replies_total", []string{`type="offer"`}},
		{"bmi_dhcp_replies_total", []string{`type="ack"`}},
		{"bmi_boot_http_requests_total", []string{`kind="script"`, `code="200"`}},
		{"bmi_iscsi_logins_total", []string{`type="normal"`, `result="ok"`}},
		{"bmi_iscsi_commands_total", []string{`op="read"`, `status="good"`}},
		{"bmi_iscsi_data_bytes_total", []string{`op="read"`}},
	} {
		b, a := sum(w.before, c.name, c.labels...), sum(after, c.name, c.labels...)
		if a <= b {
			w.t.Errorf("%s%v did not move during the boot: %v -> %v", c.name, c.labels, b, a)
		}
	}
	for _, line := range strings.Split(after, "\n") {
		if strings.HasPrefix(line, "bmi_") && !strings.Contains(line, "_bucket{") {
			excerpt = append(excerpt, line)
		}
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(after, s) {
			w.t.Errorf("/metrics carries a secret")
		}
	}
	return strings.Join(excerpt, "\n")
}
