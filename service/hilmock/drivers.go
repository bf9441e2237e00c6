package hilmock

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Node is what a PowerDriver is told about a node. It is a copy: drivers
// may keep it, and changing it changes nothing in hil-mock.
type Node struct {
	// Name is the node's HIL name, e.g. "node-01".
	Name string
	// PowerAddress says where the node's power is controlled; its meaning
	// belongs to the driver (the lab's libvirt driver takes a domain name,
	// an IPMI driver would take a BMC host).
	PowerAddress string
	// Hardware are the node's facts from the inventory.
	Hardware Hardware
	// NICs are the node's NICs, in label order.
	NICs []NIC
}

// Hardware are a node's facts as the inventory gives them (the
// nova-baremetal registry of the original: cpus, memory, local disk).
type Hardware struct {
	CPUs         int `json:"cpus" yaml:"cpus"`
	MemoryMiB    int `json:"memory_mib" yaml:"memory_mib"`
	LocalDiskGiB int `json:"local_disk_gib" yaml:"local_disk_gib"`
}

// NIC is what a SwitchDriver is told about a NIC.
type NIC struct {
	// Node is the name of the node the NIC belongs to.
	Node string
	// Label is the NIC's HIL label, e.g. "eth0".
	Label string
	// MAC is the NIC's MAC address as registered, e.g. "52:54:00:00:00:01".
	MAC string
	// Port is the switch port the NIC is cabled to; its meaning belongs to
	// the driver (the lab's bridge driver takes a tap name). Empty when the
	// inventory gives none.
	Port string
}

// Boot devices accepted by SetBootDevice (HIL's IPMI bootdev values).
const (
	BootPXE  = "pxe"
	BootDisk = "disk"
	BootNone = "none"
)

// Power states returned by PowerStatus.
const (
	PowerOnState  = "on"
	PowerOffState = "off"
)

// PowerDriver turns a node's power on, off or cycles it, and sets its next
// boot device. hil-mock calls it from request handlers; an error is
// reported to the HIL client as a 500 OBMError with the error's text.
type PowerDriver interface {
	// PowerCycle resets the node (force: hard reset; otherwise a soft
	// reboot), powering it on if it is off. HIL sets the next boot device
	// to PXE before a power cycle; hil-mock does so by calling
	// SetBootDevice(BootPXE) first.
	PowerCycle(ctx context.Context, node Node, force bool) error
	// PowerOff turns the node off; turning off a node that is off is not
	// an error.
	PowerOff(ctx context.Context, node Node) error
	// PowerOn turns the node on; turning on a node that is on is not an
	// error.
	PowerOn(ctx context.Context, node Node) error
	// PowerStatus returns PowerOnState or PowerOffState.
	PowerStatus(ctx context.Context, node Node) (string, error)
	// SetBootDevice sets the device the node boots from next: BootPXE,
	// BootDisk or BootNone (hil-mock validates the value first).
	SetBootDevice(ctx context.Context, node Node, dev string) error
}

// SwitchDriver applies a NIC's network membership: in the lab, a VLAN on
// the lab bridge port of the NIC's tap. hil-mock calls it from its network
// action worker, never from a request handler; an error marks the action
// ERROR and leaves the NIC's recorded networks unchanged.
type SwitchDriver interface {
	// Connect makes nic a member of vlan. channel is HIL's channel:
	// "vlan/native" (untagged: the VLAN is the port's PVID) or
	// "vlan/<id>" (tagged).
	Connect(ctx context.Context, nic NIC, vlan int, channel string) error
	// Detach removes nic from vlan; detaching a NIC that is not a member
	// is not an error.
	Detach(ctx context.Context, nic NIC, vlan int) error
}

// Call is one call a Recorder received.
type Call struct {
	Op      string // PowerCycle, PowerOff, PowerOn, PowerStatus, SetBootDevice, Connect, Detach
	Node    string // node name (for switch calls, the NIC's node)
	NIC     string // NIC label (switch calls)
	VLAN    int    // switch calls
	Channel string // Connect
	Device  string // SetBootDevice
	Force   bool   // PowerCycle
}

// Recorder is a PowerDriver and SwitchDriver that touches no hardware: it
// records every call, remembers each node's power state and boot device and
// each NIC's VLANs, and never fails. It is the driver for tests and for
// sites without hardware. The zero value is ready; it is safe for
// concurrent use.
type Recorder struct {
	mu    sync.Mutex
	calls []Call
	power map[string]string
	boot  map[string]string
	vlans map[string][]int // "node/nic" → VLANs
}

var (
	_ PowerDriver  = (*Recorder)(nil)
	_ SwitchDriver = (*Recorder)(nil)
)

func (r *Recorder) record(c Call) {
	r.calls = append(r.calls, c)
}

func (r *Recorder) setPower(node, state string) {
	if r.power == nil {
		r.power = map[string]string{}
	}
	r.power[node] = state
}

// PowerCycle records the call; the node is on afterwards.
func (r *Recorder) PowerCycle(_ context.Context, node Node, force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(Call{Op: "PowerCycle", Node: node.Name, Force: force})
	r.setPower(node.Name, PowerOnState)
	return nil
}

// PowerOff records the call; the node is off afterwards.
func (r *Recorder) PowerOff(_ context.Context, node Node) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(Call{Op: "PowerOff", Node: node.Name})
	r.setPower(node.Name, PowerOffState)
	return nil
}

// PowerOn records the call; the node is on afterwards.
func (r *Recorder) PowerOn(_ context.Context, node Node) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(Call{Op: "PowerOn", Node: node.Name})
	r.setPower(node.Name, PowerOnState)
	return nil
}

// PowerStatus records the call and returns the node's state: off until a
// call turned it on.
func (r *Recorder) PowerStatus(_ context.Context, node Node) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(Call{Op: "PowerStatus", Node: node.Name})
	if s, ok := r.power[node.Name]; ok {
		return s, nil
	}
	return PowerOffState, nil
}

// SetBootDevice records the call and remembers the device.
func (r *Recorder) SetBootDevice(_ context.Context, node Node, dev string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(Call{Op: "SetBootDevice", Node: node.Name, Device: dev})
	if r.boot == nil {
		r.boot = map[string]string{}
	}
	r.boot[node.Name] = dev
	return nil
}

// Connect records the call and adds vlan to the NIC's VLANs.
func (r *Recorder) Connect(_ context.Context, nic NIC, vlan int, channel string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(Call{Op: "Connect", Node: nic.Node, NIC: nic.Label, VLAN: vlan, Channel: channel})
	if r.vlans == nil {
		r.vlans = map[string][]int{}
	}
	k := nic.Node + "/" + nic.Label
	if !slices.Contains(r.vlans[k], vlan) {
		r.vlans[k] = append(r.vlans[k], vlan)
		slices.Sort(r.vlans[k])
	}
	return nil
}

// Detach records the call and removes vlan from the NIC's VLANs.
func (r *Recorder) Detach(_ context.Context, nic NIC, vlan int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(Call{Op: "Detach", Node: nic.Node, NIC: nic.Label, VLAN: vlan})
	k := nic.Node + "/" + nic.Label
	if vs, ok := r.vlans[k]; ok {
		r.vlans[k] = slices.DeleteFunc(vs, func(v int) bool { return v == vlan })
	}
	return nil
}

// Calls returns a copy of the calls recorded so far, oldest first.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// BootDevice returns the last boot device set for node ("" if none).
func (r *Recorder) BootDevice(node string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.boot[node]
}

// VLANs returns the VLANs the NIC node/label is a member of, sorted.
func (r *Recorder) VLANs(node, label string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.vlans[node+"/"+label])
}

// String describes a call for test failure messages.
func (c Call) String() string {
	switch c.Op {
	case "Connect":
		return fmt.Sprintf("Connect(%s/%s, vlan %d, %s)", c.Node, c.NIC, c.VLAN, c.Channel)
	case "Detach":
		return fmt.Sprintf("Detach(%s/%s, vlan %d)", c.Node, c.NIC, c.VLAN)
	case "SetBootDevice":
		return fmt.Sprintf("SetBootDevice(%s, %s)", c.Node, c.Device)
	case "PowerCycle":
		return fmt.Sprintf("PowerCycle(%s, force=%t)", c.Node, c.Force)
	}
	return fmt.Sprintf("%s(%s)", c.Op, c.Node)
}
