package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/fault"
)

// Status is what of a lab exists right now, checked on the machine (not
// read from lab.json).
type Status struct {
	Name      string `json:"name"`
	Dir       string `json:"dir"`
	Namespace bool   `json:"namespace"`
	HostLink  bool   `json:"host_link"`
	Libvirtd  int    `json:"libvirtd_pid"` // 0: not running
	Virtlogd  int    `json:"virtlogd_pid"`
	Bmid      int    `json:"bmid_pid"`
	HILMock   int    `json:"hil_mock_pid"`
	// Processes are the pids running in the namespace (libvirtd, virtlogd,
	// QEMU and any other lab process).
	Processes []int `json:"processes"`
	// Ports are the lab's taps (and other bridge ports) with their VLAN.
	Ports    map[string]int `json:"ports"`
	Machines []string       `json:"machines"`
	// Gateways are the running gateways' bmid pids, by id; GatewayNS the
	// gateways' namespaces that exist (a several-gateway lab).
	Gateways  map[string]int `json:"gateways,omitempty"`
	GatewayNS []string       `json:"gateway_namespaces,omitempty"`
}

// Empty reports whether nothing of the lab is left on the machine.
func (s Status) Empty() bool {
	return !s.Namespace && !s.HostLink && s.Libvirtd == 0 && s.Virtlogd == 0 && s.Bmid == 0 && s.HILMock == 0 &&
		len(s.Processes) == 0 && len(s.Ports) == 0 && len(s.Gateways) == 0 && len(s.GatewayNS) == 0
}

// Status checks what of the lab exists.
func (l *Lab) Status(ctx context.Context) (Status, error) {
	s := Status{Name: l.Name, Dir: l.Dir, Namespace: l.net.Exists()}
	_, err := proc.Run(ctx, "ip", "link", "show", l.HostIf)
	s.HostLink = err == nil
	if l.daemon.Running() {
		s.Libvirtd, s.Virtlogd = l.daemon.Libvirtd.Pid, l.daemon.Virtlogd.Pid
	} else {
		if l.daemon.Libvirtd.Alive() {
			s.Libvirtd = l.daemon.Libvirtd.Pid
		}
		if l.daemon.Virtlogd.Alive() {
			s.Virtlogd = l.daemon.Virtlogd.Pid
		}
	}
	svc := l.loadServices()
	if svc.Bmid.Alive() {
		s.Bmid = svc.Bmid.Pid
	}
	if svc.HIL.Alive() {
		s.HILMock = svc.HIL.Pid
	}
	for _, g := range svc.Gateways {
		if g.Bmid.Alive() {
			if s.Gateways == nil {
				s.Gateways = map[string]int{}
			}
			s.Gateways[g.ID] = g.Bmid.Pid
		}
	}
	for i := 1; i <= MaxGateways; i++ {
		if _, err := os.Stat("/run/netns/" + l.gatewayNS(i)); err == nil {
			s.GatewayNS = append(s.GatewayNS, l.gatewayNS(i))
		}
	}
	var errs []error
	if s.Namespace {
		if s.Processes, err = l.net.Pids(ctx); err != nil {
			errs = append(errs, err)
		}
		if s.Ports, err = l.net.Ports(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Libvirtd != 0 {
		m := vm.NewMachines(l.daemon.Socket(), l.log)
		defer m.Close()
		if s.Machines, err = m.Names(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return s, errors.Join(errs...)
}

// NodeStatus is one row of `bmi-lab nodes`.
type NodeStatus struct {
	Node
	// Power is "on", "off" or "unknown" (libvirtd not running).
	Power string `json:"power"`
	// VLAN the node's NIC is on (0: none).
	VLAN int `json:"vlan"`
	// Marker is the last boot marker on the console ("host mode"), or "".
	Marker string `json:"marker"`
	// State is the state record the last boot found, or "".
	State string `json:"state"`
	// Uptime is the guest kernel's uptime when it printed the marker, in
	// seconds as the guest printed it, or "".
	Uptime string `json:"uptime_at_marker"`
}

var markerRE = regexp.MustCompile(`BMI-LAB-BOOTED (\S+) mode=(\S+) uptime=([0-9.]+)`)

// NodeStatuses returns the recorded nodes with their power, VLAN and last
// boot marker.
func (l *Lab) NodeStatuses(ctx context.Context) ([]NodeStatus, error) {
	var out []NodeStatus
	var m *vm.Machines
	if l.daemon.Running() {
		m = vm.NewMachines(l.daemon.Socket(), l.log)
		defer m.Close()
	}
	for _, n := range l.Nodes {
		ns := NodeStatus{Node: n, Power: "unknown"}
		if m != nil {
			on, err := m.Running(ctx, n.Domain)
			switch {
			case err == nil && on:
				ns.Power = "on"
			case err == nil:
				ns.Power = "off"
			case !errors.Is(err, fault.ErrNotFound):
				return nil, err
			}
		}
		if l.net.Exists() {
			if v, err := l.net.VLAN(ctx, n.Tap); err == nil {
				ns.VLAN = v
			}
		}
		if b, err := (vm.Console{Path: n.Serial}).Tail(256 << 10); err == nil {
			if all := markerRE.FindAllSubmatch(b, -1); len(all) > 0 {
				last := all[len(all)-1]
				ns.Marker = string(last[1]) + " " + string(last[2])
				ns.Uptime = string(last[3])
			}
			if all := vm.StateRE.FindAllSubmatch(b, -1); len(all) > 0 {
				ns.State = string(all[len(all)-1][1])
			}
		}
		out = append(out, ns)
	}
	return out, nil
}

// Env returns the variables that point tools at the lab, as KEY=VALUE.
// Only what exists today: the lab's addresses and libvirt socket (the API
// URL, credentials and project come with bmid).
func (l *Lab) Env() []string {
	return []string{
		"BMI_LAB_NAME=" + l.Name,
		"BMI_LAB_DIR=" + l.Dir,
		"BMI_LAB_NAMESPACE=" + l.Namespace,
		"BMI_LAB_HOST_ADDR=" + l.HostAddr,
		"BMI_LAB_ADDR=" + l.LabAddr,
		"BMI_LAB_BRIDGE=" + l.Bridge,
		"BMI_LAB_BRIDGE_IPV4=" + l.Bridge4,
		"BMI_LAB_PROVISIONING_VLAN=" + fmt.Sprint(l.ProvisioningVLAN),
		"BMI_LAB_LIBVIRT_SOCKET=" + l.LibvirtSocket,
		// The foothold: a machine on the first project network that is no
		// node (the UAT's @attacker scenarios), and bmid as it sees it.
		"BMI_LAB_FOOTHOLD=" + l.Namespace + "-fh",
		"BMI_LAB_FOOTHOLD_ADDR=" + FootholdAddr.Addr().String(),
		"BMI_LAB_FOOTHOLD_BOOT_URL=" + fmt.Sprintf("http://%s:%d", ProjectNetworks[0].Addr.Addr(), BootPort),
		"BMI_LAB_FOOTHOLD_PORTAL=" + ProjectNetworks[0].Addr.Addr().String() + ":3260",
	}
}

// shellQuote quotes v for a POSIX shell when it needs it.
func shellQuote(v string) string {
	if v != "" && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:-") == "" {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// ExportLines returns Env as `export KEY=VALUE` lines for a shell's eval.
func (l *Lab) ExportLines() []string {
	var out []string
	for _, kv := range l.Env() {
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, "export "+k+"="+shellQuote(v))
	}
	return out
}
