package steps

import (
	"fmt"
	"strings"
	"time"

	"github.com/bmi-go/bmi/service/api"
)

// chain is how far BMI's timeline of a node shows one boot: what it saw
// after a baseline, in the order a netboot takes.
type chain struct {
	// pxeDHCP and ipxeDHCP: DHCP from the NIC's PXE ROM and from iPXE. A
	// NIC whose option ROM is iPXE itself (QEMU's, the lab's) has no
	// PXE ROM step: one of the two is what a boot needs.
	pxeDHCP, ipxeDHCP, script, ipxeLogin, osLogin bool
	// osTarget is the target the booted OS logged into (bmid's timeline
	// says "target <iqn>").
	osTarget string
	// refused is the first refused login's detail ("" if none).
	refused string
}

// bootChain reads the events after baseline (bmid's clock: the last event
// before the suite powered the node on): DHCP from the PXE ROM and/or
// iPXE, the script served, the iSCSI login from iPXE, then one from the
// booted OS in another session.
func bootChain(evs []api.TimelineEvent, baseline time.Time) chain {
	var c chain
	ipxeSession := ""
	for _, ev := range evs {
		if !ev.At.After(baseline) {
			continue
		}
		switch ev.Step {
		case "dhcp-offer", "dhcp-ack":
			c.pxeDHCP = c.pxeDHCP || ev.Client == "pxe-rom"
			c.ipxeDHCP = c.ipxeDHCP || ev.Client == "ipxe"
		case "ipxe-script-served":
			c.script = true
		case "iscsi-login":
			switch {
			case ev.Client == "ipxe":
				c.ipxeLogin, ipxeSession = true, ev.Session
			case c.ipxeLogin && ev.Session != ipxeSession:
				c.osLogin = true
				c.osTarget = strings.TrimPrefix(ev.Detail, "target ")
			}
		case "iscsi-login-refused":
			if c.refused == "" {
				c.refused = strings.TrimSpace(fmt.Sprintf("%s from %s (%s): %s", ev.Initiator, ev.Remote, ev.Client, ev.Detail))
			}
		}
	}
	return c
}

// done says the whole chain was seen.
func (c chain) done() bool { return (c.pxeDHCP || c.ipxeDHCP) && c.script && c.ipxeLogin && c.osLogin }

// missing names the milestones not seen yet.
func (c chain) missing() []string {
	var out []string
	for _, m := range []struct {
		seen bool
		what string
	}{
		{c.pxeDHCP || c.ipxeDHCP, "DHCP from the boot firmware (PXE ROM or iPXE)"}, {c.script, "iPXE script served"},
		{c.ipxeLogin, "iSCSI login from iPXE"}, {c.osLogin, "iSCSI login from the booted OS (another session)"},
	} {
		if !m.seen {
			out = append(out, m.what)
		}
	}
	return out
}

// lastAt is the time of the last event (zero when there is none): the
// baseline of the next boot.
func lastAt(evs []api.TimelineEvent) time.Time {
	var t time.Time
	for _, ev := range evs {
		if ev.At.After(t) {
			t = ev.At
		}
	}
	return t
}

// timelineText renders the events after baseline for a report attachment,
// times relative to the first.
func timelineText(node string, evs []api.TimelineEvent, baseline time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "BMI's boot timeline of %s (GET .../nodes/%s/timeline)\n", node, node)
	var first time.Time
	for _, ev := range evs {
		if !ev.At.After(baseline) {
			continue
		}
		if first.IsZero() {
			first = ev.At
		}
		fmt.Fprintf(&b, "+%8.3fs  %s  %-20s %-8s %s\n", ev.At.Sub(first).Seconds(), ev.At.UTC().Format(time.RFC3339Nano),
			ev.Step, ev.Client, strings.TrimSpace(ev.Initiator+" "+ev.Remote+" "+ev.Session+" "+ev.Detail))
	}
	return b.String()
}
