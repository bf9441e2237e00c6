package vm

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// Milestone is a named pattern in a boot's console output.
type Milestone struct {
	Name string
	RE   *regexp.Regexp
}

// BootMilestones are the phases of a lab boot in the order they happen;
// a boot shows a subset (a local boot has no DHCP or iSCSI login; a BIOS
// machine's network firmware is iPXE's ROM, so it has no firmware-dhcp
// and its "ipxe" is the ROM starting). Under UEFI, "firmware" is OVMF
// starting its network boot (it prints nothing before), "firmware-dhcp"
// its DHCP done, "ipxe" the iPXE binary it downloaded starting;
// "configuring" and "dhcp" are then iPXE's own.
var BootMilestones = []Milestone{
	{"firmware", regexp.MustCompile(`SeaBIOS|iPXE \d|>>Start (PXE|HTTP)`)},
	{"firmware-dhcp", regexp.MustCompile(`Station IP address is`)},
	{"ipxe", regexp.MustCompile(`iPXE initialising devices`)},
	{"configuring", regexp.MustCompile(`Configuring \(net0`)},
	{"dhcp", regexp.MustCompile(`net0: \d+\.\d+\.\d+\.\d+/`)},
	{"san-login", regexp.MustCompile(`Registered SAN device`)},
	{"local-disk", regexp.MustCompile(`Booting from Hard Disk`)},
	{"bootloader", regexp.MustCompile(`SYSLINUX \d`)},
	{"init", regexp.MustCompile(`BMI-LAB-T \S+ init-start`)},
	{"iscsi-login", regexp.MustCompile(`iscsistart -b rc=0`)},
	{"marker", BootedRE},
}

// Seen is when a milestone first appeared, measured from the start given
// to Timeline.
type Seen struct {
	Name string
	At   time.Duration
}

// Timeline is the milestones of one boot, in the order seen.
type Timeline []Seen

// String renders the timeline as "name 1.2s, name 3.4s".
func (t Timeline) String() string {
	var parts []string
	for _, s := range t {
		parts = append(parts, fmt.Sprintf("%s %.1fs", s.Name, s.At.Seconds()))
	}
	return strings.Join(parts, ", ")
}

// Timeline follows the console from offset from and timestamps each
// milestone when it first appears (to within the 100 ms poll), until the
// last milestone or FailedRE shows up or timeout passes (then the error is
// ErrUnavailable and the timeline holds what was seen).
func (c Console) Timeline(ctx context.Context, from int64, start time.Time, ms []Milestone, timeout time.Duration) (Timeline, error) {
	var tl Timeline
	seen := map[string]bool{}
	deadline := time.Now().Add(timeout)
	for {
		b, _ := c.readFrom(from)
		now := time.Since(start)
		for _, m := range ms {
			if !seen[m.Name] && m.RE.Match(b) {
				seen[m.Name] = true
				tl = append(tl, Seen{Name: m.Name, At: now})
			}
		}
		if len(ms) > 0 && seen[ms[len(ms)-1].Name] {
			return tl, nil
		}
		if f := FailedRE.FindSubmatch(b); f != nil {
			return tl, fmt.Errorf("console %s: boot failed: %s: %w", c.Path, f[1], fault.ErrUnavailable)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return tl, fmt.Errorf("console %s: no %s within %v (seen: %v): %w", c.Path, ms[len(ms)-1].Name, timeout, tl, fault.ErrUnavailable)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
