package steps

import (
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/api"
)

func TestBootChain(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ev := func(s int, step, client, session string) api.TimelineEvent {
		return api.TimelineEvent{At: at(s), Step: step, Client: client, Session: session}
	}
	full := []api.TimelineEvent{
		ev(1, "dhcp-discover", "pxe-rom", ""), ev(1, "dhcp-offer", "pxe-rom", ""), ev(2, "dhcp-ack", "pxe-rom", ""),
		ev(3, "ipxe-binary-served", "", ""), ev(4, "dhcp-offer", "ipxe", ""), ev(4, "dhcp-ack", "ipxe", ""),
		ev(5, "ipxe-script-served", "", ""), ev(6, "iscsi-login", "ipxe", "40002723aaaa"),
		ev(9, "iscsi-login", "os", "00023d000001"),
	}
	tests := map[string]struct {
		evs      []api.TimelineEvent
		baseline time.Time
		done     bool
		missing  string
		refused  bool
	}{
		"whole boot":            {evs: full, done: true},
		"before the baseline":   {evs: full, baseline: at(5), missing: "DHCP from the boot firmware (PXE ROM or iPXE), iPXE script served"},
		"no OS login yet":       {evs: full[:8], missing: "iSCSI login from the booted OS"},
		"OS login before iPXE":  {evs: append([]api.TimelineEvent{ev(1, "iscsi-login", "os", "00023d000001")}, full[:8]...), missing: "iSCSI login from the booted OS"},
		"iPXE logs in again":    {evs: append(append([]api.TimelineEvent{}, full[:8]...), ev(7, "iscsi-login", "os", "40002723aaaa")), missing: "iSCSI login from the booted OS"},
		"iPXE as the NIC's ROM": {evs: full[3:], done: true},
		"no DHCP":               {evs: full[6:], missing: "DHCP from the boot firmware"},
		"refused": {evs: append(append([]api.TimelineEvent{}, full[:7]...),
			api.TimelineEvent{At: at(6), Step: "iscsi-login-refused", Client: "ipxe", Detail: "CHAP failed"}), refused: true, missing: "iSCSI login from iPXE"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := bootChain(tc.evs, tc.baseline)
			if c.done() != tc.done || !strings.HasPrefix(strings.Join(c.missing(), ", "), tc.missing) || (c.refused != "") != tc.refused {
				t.Fatalf("bootChain = %+v (done %v, missing %q), want done %v, missing %q..., refused %v",
					c, c.done(), c.missing(), tc.done, tc.missing, tc.refused)
			}
		})
	}
	// the OS's login names its target; an earlier boot's does not count
	tgt := func(e api.TimelineEvent, iqn string) api.TimelineEvent { e.Detail = "target " + iqn; return e }
	evs := []api.TimelineEvent{tgt(ev(1, "iscsi-login", "ipxe", "40002723aaaa"), "iqn.x:first"), tgt(ev(2, "iscsi-login", "os", "1"), "iqn.x:first"),
		ev(10, "dhcp-ack", "ipxe", ""), ev(11, "ipxe-script-served", "", ""),
		tgt(ev(12, "iscsi-login", "ipxe", "40002723bbbb"), "iqn.x:second"), tgt(ev(13, "iscsi-login", "os", "2"), "iqn.x:second")}
	if c := bootChain(evs, at(5)); !c.done() || c.osTarget != "iqn.x:second" {
		t.Errorf("OS target after the baseline = %q (done %v), want iqn.x:second", c.osTarget, c.done())
	}
	if got := lastAt(full); !got.Equal(at(9)) {
		t.Errorf("lastAt = %v", got)
	}
	if txt := timelineText("node-01", full, at(4)); strings.Count(txt, "\n") != 4 || !strings.Contains(txt, "iscsi-login") {
		t.Errorf("timelineText after +4s:\n%s", txt)
	}
}
