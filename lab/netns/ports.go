package netns

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
)

var portRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,14}$`)

// ValidPort checks a port (tap) name: a lower-case letter, then up to 14
// lower-case letters, digits or dashes (a Linux interface name), and none
// of the lab's own links (lo, api0, vlan<N>).
func ValidPort(name string) error {
	if !portRE.MatchString(name) || name == APILink || name == "lo" || strings.HasPrefix(name, "vlan") {
		return fmt.Errorf("port name %q: want a lower-case letter then up to 14 of [a-z0-9-], not lo, %s or vlan*: %w",
			name, APILink, fault.ErrInvalid)
	}
	return nil
}

// AddTap creates the tap name in the namespace (if missing) and brings it
// up. A new tap is on no VLAN: the NIC behind it is disconnected until
// SetVLAN. An existing tap keeps its VLAN.
func (n *Net) AddTap(ctx context.Context, name string) error {
	if err := ValidPort(name); err != nil {
		return err
	}
	if _, err := n.ip(ctx, "link", "show", name); err != nil {
		if _, err := n.ip(ctx, "tuntap", "add", "dev", name, "mode", "tap"); err != nil {
			return fmt.Errorf("lab %q: tap %q: %w", n.cfg.Name, name, err)
		}
	}
	if _, err := n.ip(ctx, "link", "set", name, "up"); err != nil {
		return fmt.Errorf("lab %q: tap %q: %w", n.cfg.Name, name, err)
	}
	return nil
}

// DelTap removes the tap name; a missing tap is not an error.
func (n *Net) DelTap(ctx context.Context, name string) error {
	if err := ValidPort(name); err != nil {
		return err
	}
	if _, err := n.ip(ctx, "link", "show", name); err != nil {
		return nil
	}
	if _, err := n.ip(ctx, "link", "del", name); err != nil {
		return fmt.Errorf("lab %q: delete tap %q: %w", n.cfg.Name, name, err)
	}
	return nil
}

// link is the part of `ip -j link show` the package reads.
type link struct {
	Ifname string `json:"ifname"`
	Master string `json:"master"`
}

func (n *Net) links(ctx context.Context, args ...string) ([]link, error) {
	out, err := n.ip(ctx, append([]string{"-j", "link", "show"}, args...)...)
	if err != nil {
		return nil, err
	}
	var ls []link
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		return nil, fmt.Errorf("lab %q: parse ip link output: %w", n.cfg.Name, err)
	}
	return ls, nil
}

func vlanOf(master string) int {
	if !strings.HasPrefix(master, "vlan") {
		return 0
	}
	v, err := strconv.Atoi(master[len("vlan"):])
	if err != nil {
		return 0
	}
	return v
}

// VLAN returns the VLAN port is on, 0 when it is disconnected.
func (n *Net) VLAN(ctx context.Context, port string) (int, error) {
	if err := ValidPort(port); err != nil {
		return 0, err
	}
	ls, err := n.links(ctx, "dev", port)
	if err != nil || len(ls) != 1 {
		return 0, fmt.Errorf("lab %q: port %q: %w", n.cfg.Name, port, fault.ErrNotFound)
	}
	return vlanOf(ls[0].Master), nil
}

// SetVLAN connects port to VLAN vlan only (an access port: the tap is
// enslaved to that VLAN's bridge, created on first use), or disconnects it
// from every network when vlan is 0.
func (n *Net) SetVLAN(ctx context.Context, port string, vlan int) error {
	if vlan < 0 || vlan > 4094 {
		return fmt.Errorf("lab %q: port %q: VLAN %d: want 0 (none) or 1..4094: %w", n.cfg.Name, port, vlan, fault.ErrInvalid)
	}
	have, err := n.VLAN(ctx, port)
	if err != nil {
		return err
	}
	if have == vlan {
		return nil
	}
	if vlan == 0 {
		if _, err := n.ip(ctx, "link", "set", port, "nomaster"); err != nil {
			return fmt.Errorf("lab %q: port %q: %w", n.cfg.Name, port, err)
		}
		n.log.Debug("port disconnected", "lab", n.cfg.Name, "port", port)
		return nil
	}
	if err := n.ensureBridge(ctx, vlan); err != nil {
		return err
	}
	if _, err := n.ip(ctx, "link", "set", port, "master", BridgeName(vlan)); err != nil {
		return fmt.Errorf("lab %q: port %q: %w", n.cfg.Name, port, err)
	}
	n.log.Debug("port VLAN set", "lab", n.cfg.Name, "port", port, "vlan", vlan)
	return nil
}

// Ports returns every port of the lab (taps and other links that are not
// the lab's own) with its VLAN (0: disconnected).
func (n *Net) Ports(ctx context.Context) (map[string]int, error) {
	ls, err := n.links(ctx)
	if err != nil {
		return nil, fmt.Errorf("lab %q: %w", n.cfg.Name, err)
	}
	ports := map[string]int{}
	for _, l := range ls {
		if ValidPort(l.Ifname) != nil {
			continue
		}
		ports[l.Ifname] = vlanOf(l.Master)
	}
	return ports, nil
}

// PortNames returns the names of Ports, sorted.
func PortNames(ports map[string]int) []string {
	names := make([]string, 0, len(ports))
	for p := range ports {
		names = append(names, p)
	}
	sort.Strings(names)
	return names
}
