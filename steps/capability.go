package steps

import (
	"fmt"
	"slices"
	"strings"
)

// Capability is something a site can do that some scenarios need. A site
// states its capabilities (uat site configs: the capabilities key); a
// scenario needs capability C when it carries the tag @C (or an alias
// below). Scenarios whose needs the site lacks are not run there, and are
// reported skipped, never passed.
type Capability string

// The capabilities.
const (
	// CapBoots: the site's nodes really netboot through BMI (power from
	// HIL, DHCP, iPXE, iSCSI) and the suite may boot them; needs
	// boot_image.
	CapBoots Capability = "boots"
	// CapConsoles: the nodes' serial consoles can be read (through HIL's
	// console API, or a directory of <node>.log files); booting scenarios
	// then also check the console marker.
	CapConsoles Capability = "consoles"
	// CapTwoTenants: a second tenant (other_project and its member's
	// credentials) the suite may use to try to cross tenants.
	CapTwoTenants Capability = "two-tenants"
	// CapHILStop: the suite may stop the site's HIL and start it again.
	CapHILStop Capability = "hil-stop"
	// CapCephStop: the suite may stop the site's Ceph and start it again.
	CapCephStop Capability = "ceph-stop"
	// CapFoothold: the suite has a foothold on the provisioning network
	// (a host there it may send from, as an attacker would).
	CapFoothold Capability = "foothold"
	// CapBmidRestart: the suite may restart bmid (gracefully, killed,
	// upgraded) while nodes booted from the stay-up image run.
	CapBmidRestart Capability = "bmid-restart"
	// CapBootFaults: the suite may turn faults on the boot path on and off
	// (bmid's boot.faults: 20 % of DHCP, TFTP and HTTP requests dropped,
	// every answer 200 ms late); needs boots.
	CapBootFaults Capability = "boot-faults"
)

// Capabilities lists every capability with what it means, in the order
// listings show them.
var Capabilities = []struct {
	Cap   Capability
	Means string
}{
	{CapBoots, "nodes that really netboot through BMI (boot_image)"},
	{CapConsoles, "the nodes' serial consoles can be read (hil_consoles or consoles)"},
	{CapTwoTenants, "a second tenant (other_project, credentials.other)"},
	{CapHILStop, "a HIL the suite may stop and start (hil_control)"},
	{CapCephStop, "a Ceph the suite may stop and start (ceph_control)"},
	{CapFoothold, "a foothold on the provisioning network (foothold)"},
	{CapBmidRestart, "bmid may be restarted under running nodes (stayup_image, bmid_restart)"},
	{CapBootFaults, "faults on the boot path may be turned on and off (boot_faults)"},
}

// tagAliases are older tags that name a capability.
var tagAliases = map[string]Capability{
	"@lab":      CapBoots,
	"@hil-down": CapHILStop,
	"@restart":  CapBmidRestart,
	"@attacker": CapFoothold,
}

// ParseCapability checks a capability name.
func ParseCapability(s string) (Capability, error) {
	for _, c := range Capabilities {
		if string(c.Cap) == s {
			return c.Cap, nil
		}
	}
	var names []string
	for _, c := range Capabilities {
		names = append(names, string(c.Cap))
	}
	return "", fmt.Errorf("unknown capability %q (known: %s)", s, strings.Join(names, ", "))
}

// Means says what a capability stands for.
func (c Capability) Means() string {
	for _, x := range Capabilities {
		if x.Cap == c {
			return x.Means
		}
	}
	return string(c)
}

// Needs returns the capabilities a scenario with these tags needs, in
// the order of Capabilities, each once.
func Needs(tags []string) []Capability {
	need := map[Capability]bool{}
	for _, t := range tags {
		if c, ok := tagAliases[t]; ok {
			need[c] = true
		} else if c, err := ParseCapability(strings.TrimPrefix(t, "@")); err == nil && strings.HasPrefix(t, "@") {
			need[c] = true
		}
	}
	if need[CapBmidRestart] || need[CapBootFaults] {
		need[CapBoots] = true // a stay-up node, or a boot through faults, is a node that boots
	}
	var out []Capability
	for _, c := range Capabilities {
		if need[c.Cap] {
			out = append(out, c.Cap)
		}
	}
	return out
}

// TagsOf returns the tags that make a scenario need c (its name and its
// aliases).
func TagsOf(c Capability) []string {
	out := []string{"@" + string(c)}
	for t, a := range tagAliases {
		if a == c {
			out = append(out, t)
		}
	}
	slices.Sort(out[1:])
	return out
}

// Can says whether the site has capability c.
func (s *Site) Can(c Capability) bool { return slices.Contains(s.Capabilities, c) }

// Missing returns the capabilities of need the site lacks.
func (s *Site) Missing(need []Capability) []Capability {
	var out []Capability
	for _, c := range need {
		if !s.Can(c) {
			out = append(out, c)
		}
	}
	return out
}

// validateCapabilities checks that the site has what each of its
// capabilities needs.
func (s *Site) validateCapabilities() error {
	for _, c := range s.Capabilities {
		if _, err := ParseCapability(string(c)); err != nil {
			return fmt.Errorf("site %s: %w", s.Name, err)
		}
		var missing string
		switch c {
		case CapBoots:
			if s.BootImage == "" {
				missing = "boot_image (an image of " + s.Project + " that boots)"
			}
		case CapConsoles:
			if s.Consoles == "" && !s.HILConsoles {
				missing = "hil_consoles (read through HIL) or consoles (a directory of <node>.log)"
			}
		case CapTwoTenants:
			if s.OtherProject == "" || s.Other.User == "" {
				missing = "other_project and credentials.other"
			}
		case CapHILStop:
			if s.HILSwitch == nil {
				missing = "hil_control (commands that stop and start HIL)"
			}
		case CapCephStop:
			if s.CephSwitch == nil {
				missing = "ceph_control (commands that stop and start Ceph)"
			}
		case CapFoothold:
			if s.Foothold == nil {
				missing = "foothold (command, address, boot_url and portal)"
			}
		case CapBootFaults:
			if !s.Can(CapBoots) || s.BootFaults == nil {
				missing = "capability boots and boot_faults (commands that turn bmid's boot faults on and off)"
			}
		case CapBmidRestart:
			if !s.Can(CapBoots) || s.StayUpImage == "" || s.BmidRestart[RestartGraceful] == "" ||
				s.BmidRestart[RestartKill] == "" || s.BmidRestart[RestartUpgrade] == "" {
				missing = "capability boots, stayup_image and the three bmid_restart commands"
			}
		}
		if missing != "" {
			return fmt.Errorf("site %s: capability %s needs %s", s.Name, c, missing)
		}
	}
	return nil
}
