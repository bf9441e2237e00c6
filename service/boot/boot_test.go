package boot

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/config"
)

func TestTimeline(t *testing.T) {
	tl := &Timeline{Max: 2}
	mac := net.HardwareAddr{1, 2, 3, 4, 5, 6}
	other := net.HardwareAddr{1, 2, 3, 4, 5, 7}
	at := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	tl.Record(context.Background(), Event{MAC: mac, Step: StepDiscover, At: at})
	tl.Record(context.Background(), Event{MAC: mac, Step: StepOffer})
	tl.Record(context.Background(), Event{MAC: mac, Step: StepAck})
	tl.Record(context.Background(), Event{MAC: other, Step: StepDiscover})
	evs := tl.Events(mac)
	if len(evs) != 2 || evs[0].Step != StepOffer || evs[1].Step != StepAck {
		t.Fatalf("events = %+v, want the last two (offer, ack)", evs)
	}
	if evs[0].At.IsZero() {
		t.Error("a zero At was not filled in")
	}
	tl.Forget(mac)
	if len(tl.Events(mac)) != 0 || len(tl.Events(other)) != 1 {
		t.Error("Forget removed the wrong events")
	}
}

func TestFaults(t *testing.T) {
	tests := map[string]struct {
		f       Faults
		valid   bool
		enabled bool
	}{
		"off":      {Faults{}, true, false},
		"drop":     {Faults{DropRate: 0.5}, true, true},
		"delay":    {Faults{Delay: time.Millisecond}, true, true},
		"negative": {Faults{DropRate: -1}, false, false},
		"above 1":  {Faults{DropRate: 1.5}, false, true},
		"neg wait": {Faults{Delay: -time.Second}, false, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.f.Validate(); (err == nil) != tc.valid {
				t.Errorf("Validate = %v, want valid=%v", err, tc.valid)
			}
			if tc.f.Enabled() != tc.enabled {
				t.Errorf("Enabled = %v", tc.f.Enabled())
			}
		})
	}
	if (Faults{}).Drop() || !(Faults{DropRate: 1}).Drop() {
		t.Error("Drop with rate 0 or 1 is wrong")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if !(Faults{Delay: time.Hour}).Wait(ctx) {
		t.Error("Wait did not stop when ctx was done")
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	Faults{}.Announce(log, "dhcp")
	if buf.Len() != 0 {
		t.Errorf("Announce logged with faults off: %q", buf.String())
	}
	Faults{DropRate: 0.1}.Announce(log, "dhcp")
	if !strings.Contains(buf.String(), "FAULT INJECTION IS ON") || !strings.Contains(buf.String(), "service=dhcp") {
		t.Errorf("Announce = %q", buf.String())
	}
}

func TestFaultsFromConfig(t *testing.T) {
	got := FaultsFromConfig(config.Fault{DropPercent: 25, Delay: time.Second})
	if got != (Faults{DropRate: 0.25, Delay: time.Second}) {
		t.Errorf("FaultsFromConfig = %+v", got)
	}
	if FaultsFromConfig(config.Default().Boot.Faults.DHCP).Enabled() {
		t.Error("faults are on by default")
	}
}

func TestLogLimiter(t *testing.T) {
	l := &LogLimiter{Window: time.Hour, Burst: 3}
	allowed := 0
	for range 10 {
		if ok, _ := l.Allow(); ok {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("%d lines allowed in one window, want 3", allowed)
	}
	l.start = time.Time{} // the window is over
	ok, suppressed := l.Allow()
	if !ok || suppressed != 7 {
		t.Fatalf("Allow after the window = %v, %d suppressed; want true, 7", ok, suppressed)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"10.0.0.5 undionly.kpxe": "10.0.0.5 undionly.kpxe",
		"10.0.0.5 http://h:8080/boot/52-54-00-00-00-01.ipxe?token=s3cret": "10.0.0.5 http://h:8080/boot/52-54-00-00-00-01.ipxe?…",
		"proxy http://h/b.ipxe?token=a&x=b tail":                          "proxy http://h/b.ipxe?… tail",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	tl := NewTimeline()
	mac := net.HardwareAddr{1, 2, 3, 4, 5, 6}
	tl.Record(context.Background(), Event{MAC: mac, Step: StepOffer, Detail: "http://h/b.ipxe?token=s3cret"})
	if evs := tl.Events(mac); len(evs) != 1 || strings.Contains(evs[0].Detail, "s3cret") {
		t.Errorf("recorded %+v: the token is still there", evs)
	}
}

func TestIPXEISID(t *testing.T) {
	for isid, want := range map[string]bool{
		"40002723abcd": true,  // iPXE: IANA format, Fen Systems
		"40002723ABCD": true,  // case does not matter
		"00023d000001": false, // open-iscsi: OUI format
		"800000123456": false, // random format
		"":             false,
	} {
		if got := IPXEISID(isid); got != want {
			t.Errorf("IPXEISID(%q) = %v, want %v", isid, got, want)
		}
	}
}
