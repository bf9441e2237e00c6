// Package lab assembles the lab's machinery into one site on this
// machine: the network (lab/netns), a private libvirtd with one PXE-first
// machine per node (lab/vm), and a state file (lab.json in the lab
// directory) from which `bmi-lab status`, `nodes`, `console`, `env` and
// `down` work.
//
// Build makes the parts that exist today; the Ceph cluster, hil-mock and
// bmid are started by `bmi-lab up` once bmid exists (not yet).
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/bmi-go/bmi/lab/netns"
	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/fault"
)

// Options describe a lab to build.
type Options struct {
	// Name of the lab (netns.ValidName); its namespace is bmilab-<Name>.
	Name string
	// Dir holds everything the lab writes (default DefaultDir(Name)).
	Dir string
	// Nodes is the number of machines (1..64).
	Nodes int
	// MemoryMiB per machine (default 192).
	MemoryMiB int
	// UEFI and UEFIHTTP make the last nodes UEFI machines (OVMF): the
	// last UEFIHTTP ones boot by UEFI HTTP boot, the UEFI ones before them
	// by PXE; the others are BIOS machines. Firmware names a node's
	// firmware kind (vm.Firmware*) explicitly and wins over the counts.
	// A node neither names keeps the kind lab.json records (BIOS if new).
	UEFI, UEFIHTTP int
	Firmware       map[string]string
	// Gateways is the number of bmid gateways (1..MaxGateways; 0: the
	// number lab.json records, else 1). With more than one, each runs in
	// a namespace of its own with keepalived moving the nodes' addresses
	// between them, on a PostgreSQL of the lab's (lab/gateways.go). A
	// lab's number of gateways is fixed when it is first built.
	Gateways int
}

// DefaultDir is the default lab directory of the lab name.
func DefaultDir(name string) string { return filepath.Join("/var/lib/bmi-lab", name) }

// ownerDir records which directory a lab name belongs to while it exists.
const ownerDir = "/run/bmi-lab"

// Node is one machine of the lab as recorded in lab.json.
type Node struct {
	Name   string `json:"name"`
	Domain string `json:"domain"`
	MAC    string `json:"mac"`
	Tap    string `json:"tap"`
	Serial string `json:"serial"`
	// Firmware is the machine's firmware kind (vm.FirmwareBIOS, UEFI or
	// UEFIHTTP); empty in a lab.json of before UEFI machines: BIOS.
	Firmware string `json:"firmware,omitempty"`
	// NVRAM is a UEFI machine's variable store in the lab directory.
	NVRAM string `json:"nvram,omitempty"`
}

// UEFI reports whether the node is a UEFI machine.
func (n Node) UEFI() bool { return vm.IsUEFI(n.Firmware) }

// State is the content of lab.json.
type State struct {
	Name             string `json:"name"`
	Dir              string `json:"dir"`
	Namespace        string `json:"namespace"`
	ProvisioningVLAN int    `json:"provisioning_vlan"`
	Bridge           string `json:"bridge"`
	Bridge4          string `json:"bridge_ipv4"`
	HostLink         string `json:"host_link"`
	HostIf           string `json:"host_if"`
	HostAddr         string `json:"host_addr"`
	LabAddr          string `json:"lab_addr"`
	LibvirtSocket    string `json:"libvirt_socket"`
	Nodes            []Node `json:"nodes"`
	// Gateways is the number of bmid gateways (0 in a lab.json of before
	// gateways: 1).
	Gateways int `json:"gateways,omitempty"`
}

// Lab is a built (or partly built) lab.
type Lab struct {
	State
	net    *netns.Net
	daemon *vm.Daemon
	log    *slog.Logger
}

// Commands the lab runs, with their Debian packages.
var Commands = map[string]string{
	"ip": "iproute2", "unshare": "util-linux", "libvirtd": "libvirt-daemon-system", "virtlogd": "libvirt-daemon-system",
	"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils",
}

func statePath(dir string) string { return filepath.Join(dir, "lab.json") }

// New returns the handle of the lab name in dir without touching anything.
func New(name, dir string, log *slog.Logger) (*Lab, error) {
	if err := netns.ValidName(name); err != nil {
		return nil, err
	}
	if dir == "" {
		dir = DefaultDir(name)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	n, err := netns.New(netns.Config{Name: name}, log)
	if err != nil {
		return nil, err
	}
	l := &Lab{net: n, log: log, daemon: vm.NewDaemon(n.Namespace(), filepath.Join(dir, "libvirt"), log)}
	c := n.Config()
	l.State = State{
		Name: name, Dir: dir, Namespace: n.Namespace(), ProvisioningVLAN: c.ProvisioningVLAN,
		Bridge: n.ProvisioningBridge(), Bridge4: c.Bridge4.String(), HostLink: c.HostLink.String(),
		HostIf: n.HostIf(), HostAddr: n.HostAddr().String(), LabAddr: n.LabAddr().String(),
		LibvirtSocket: l.daemon.Socket(),
	}
	if b, err := os.ReadFile(statePath(dir)); err == nil {
		var st State
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("lab %q: %s: %w", name, statePath(dir), err)
		}
		if st.Name != name {
			return nil, fmt.Errorf("directory %s holds lab %q, not %q: %w", dir, st.Name, name, fault.ErrConflict)
		}
		l.Nodes, l.Gateways = st.Nodes, st.Gateways
	}
	if l.Gateways == 0 {
		l.Gateways = 1
	}
	return l, nil
}

// Net is the lab's network.
func (l *Lab) Net() *netns.Net { return l.net }

// Daemon is the lab's libvirtd.
func (l *Lab) Daemon() *vm.Daemon { return l.daemon }

// Node returns the recorded node name.
func (l *Lab) Node(name string) (Node, error) {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("lab %q has no node %q: %w", l.Name, name, fault.ErrNotFound)
}

// nodeFor returns node i's record (1-based): fixed MAC derived from the
// lab name, tap and domain names.
func (l *Lab) nodeFor(i int) Node {
	h := fnv.New32a()
	h.Write([]byte(l.Name))
	v := h.Sum32()
	name := fmt.Sprintf("node-%02d", i)
	return Node{
		Name:   name,
		Domain: l.Name + "-" + name,
		MAC:    fmt.Sprintf("52:54:%02x:%02x:00:%02x", byte(v>>8), byte(v), i),
		Tap:    fmt.Sprintf("tap-%02d", i),
		Serial: filepath.Join(l.Dir, "consoles", name+".log"),
	}
}

// checkResources refuses a lab the machine cannot hold, saying what to do.
func checkResources(o Options) error {
	for cmd, pkg := range Commands {
		if _, err := exec.LookPath(cmd); err != nil {
			return fmt.Errorf("%s is missing: install the Debian package %s (make deps): %w", cmd, pkg, fault.ErrUnavailable)
		}
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the lab needs root (network namespaces, taps, libvirtd): %w", fault.ErrForbidden)
	}
	need := uint64(o.Nodes*o.MemoryMiB)*13/10 + 512 // QEMU overhead + libvirtd
	if avail, err := memAvailableMiB(); err == nil && avail < need {
		return fmt.Errorf("%d nodes of %d MiB need about %d MiB of memory, %d MiB are available: use fewer --nodes: %w",
			o.Nodes, o.MemoryMiB, need, avail, fault.ErrUnavailable)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return fmt.Errorf("lab directory %s: %w", o.Dir, err)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(o.Dir, &fs); err == nil {
		free := fs.Bavail * uint64(fs.Bsize) >> 20
		if free < 512 {
			return fmt.Errorf("lab directory %s has %d MiB free, the lab needs at least 512 MiB: choose another --dir: %w", o.Dir, free, fault.ErrUnavailable)
		}
	}
	return nil
}

func memAvailableMiB() (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemAvailable:") {
			var kb uint64
			if _, err := fmt.Sscanf(strings.TrimPrefix(line, "MemAvailable:"), "%d", &kb); err != nil {
				return 0, err
			}
			return kb >> 10, nil
		}
	}
	return 0, errors.New("no MemAvailable in /proc/meminfo")
}

// claim records that the lab name belongs to dir; another directory's lab
// of the same name is refused (ErrConflict).
func (l *Lab) claim() error {
	if err := os.MkdirAll(ownerDir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(ownerDir, l.Name+".dir")
	if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) != l.Dir && l.net.Exists() {
		return fmt.Errorf("lab %q is in use by %s: run 'bmi-lab down --name %s --dir %s' or choose another --name: %w",
			l.Name, strings.TrimSpace(string(b)), l.Name, strings.TrimSpace(string(b)), fault.ErrConflict)
	}
	return os.WriteFile(p, []byte(l.Dir+"\n"), 0o644)
}

// firmware returns node i's (1-based) firmware kind for o, given the kind
// recorded for it (empty if none).
func (o Options) firmware(i int, name, recorded string) string {
	if f, ok := o.Firmware[name]; ok {
		return f
	}
	if o.UEFI+o.UEFIHTTP > 0 {
		switch {
		case i > o.Nodes-o.UEFIHTTP:
			return vm.FirmwareUEFIHTTP
		case i > o.Nodes-o.UEFIHTTP-o.UEFI:
			return vm.FirmwareUEFI
		}
		return vm.FirmwareBIOS
	}
	if recorded != "" {
		return recorded
	}
	return vm.FirmwareBIOS
}

// validFirmware checks the firmware options against o.Nodes.
func (o Options) validFirmware() error {
	if o.UEFI < 0 || o.UEFIHTTP < 0 || o.UEFI+o.UEFIHTTP > o.Nodes {
		return fmt.Errorf("lab %q: %d UEFI and %d UEFI HTTP boot nodes of %d: want 0..%d in all: %w",
			o.Name, o.UEFI, o.UEFIHTTP, o.Nodes, o.Nodes, fault.ErrInvalid)
	}
	for name, f := range o.Firmware {
		if f == "" || !vm.ValidFirmware(f) {
			return fmt.Errorf("lab %q: node %s: firmware %q: want bios, uefi or uefi-http: %w", o.Name, name, f, fault.ErrInvalid)
		}
		var i int
		if _, err := fmt.Sscanf(name, "node-%d", &i); err != nil || i < 1 || i > o.Nodes || fmt.Sprintf("node-%02d", i) != name {
			return fmt.Errorf("lab %q: firmware of node %q: the lab's nodes are node-01..node-%02d: %w", o.Name, name, o.Nodes, fault.ErrInvalid)
		}
	}
	return nil
}

// Build makes the lab's network, its libvirtd and o.Nodes PXE-first
// diskless machines (powered off, NICs on no network; BIOS or UEFI as o
// says, a UEFI one with its variable store under nvram/ in the lab
// directory), and records them in lab.json. It is idempotent and resumes a
// half-built lab.
func Build(ctx context.Context, o Options, log *slog.Logger) (*Lab, error) {
	if o.Nodes < 1 || o.Nodes > 64 {
		return nil, fmt.Errorf("lab %q: %d nodes: want 1..64: %w", o.Name, o.Nodes, fault.ErrInvalid)
	}
	if err := o.validFirmware(); err != nil {
		return nil, err
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 192
	}
	if o.MemoryMiB < 128 || o.MemoryMiB > 4096 {
		return nil, fmt.Errorf("lab %q: %d MiB per node: want 128..4096: %w", o.Name, o.MemoryMiB, fault.ErrInvalid)
	}
	l, err := New(o.Name, o.Dir, log)
	if err != nil {
		return nil, err
	}
	o.Dir = l.Dir
	if o.Gateways < 0 || o.Gateways > MaxGateways {
		return nil, fmt.Errorf("lab %q: %d gateways: want 1..%d: %w", o.Name, o.Gateways, MaxGateways, fault.ErrInvalid)
	}
	if o.Gateways > 0 && o.Gateways != l.Gateways {
		if _, err := os.Stat(statePath(l.Dir)); err == nil {
			return nil, fmt.Errorf("lab %q was built with %d gateway(s), not %d: take it down first (bmi-lab down): %w",
				o.Name, l.Gateways, o.Gateways, fault.ErrConflict)
		}
		l.Gateways = o.Gateways
	}
	if err := checkResources(o); err != nil {
		return nil, err
	}
	if err := l.claim(); err != nil {
		return nil, err
	}
	if err := l.net.Up(ctx); err != nil {
		return nil, err
	}
	if _, err := l.daemon.Start(ctx); err != nil {
		return nil, err
	}
	for _, d := range []string{"consoles", "nvram"} {
		if err := os.MkdirAll(filepath.Join(l.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	m := vm.NewMachines(l.daemon.Socket(), log)
	defer m.Close()
	recorded := map[string]string{}
	for _, n := range l.Nodes {
		recorded[n.Name] = n.Firmware
	}
	l.Nodes = l.Nodes[:0]
	for i := 1; i <= o.Nodes; i++ {
		n := l.nodeFor(i)
		n.Firmware = o.firmware(i, n.Name, recorded[n.Name])
		if n.UEFI() {
			n.NVRAM = filepath.Join(l.Dir, "nvram", n.Name+".fd")
		}
		if err := l.net.AddTap(ctx, n.Tap); err != nil {
			return nil, err
		}
		spec := vm.Spec{Name: n.Domain, Host: n.Name, MAC: n.MAC, Tap: n.Tap, MemoryMiB: o.MemoryMiB, Serial: n.Serial,
			Firmware: n.Firmware, NVRAM: n.NVRAM}
		if err := m.Define(ctx, spec, vm.BootNone); err != nil {
			return nil, err
		}
		l.Nodes = append(l.Nodes, n)
	}
	if err := l.save(); err != nil {
		return nil, err
	}
	log.Info("lab built", "lab", l.Name, "dir", l.Dir, "nodes", len(l.Nodes))
	return l, nil
}

func (l *Lab) save() error {
	b, err := json.MarshalIndent(l.State, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(l.Dir) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, statePath(l.Dir))
}

// Down removes everything Build made: machines and libvirtd/virtlogd (by
// their recorded pids), any process left in the namespace, the namespace
// with its bridges and taps, the host veth, and what the lab wrote to its
// directory (libvirt state, consoles, UEFI variable stores, lab.json,
// credentials, hil-mock's database) unless keepData. It works on a half-built lab and on one already removed.
func (l *Lab) Down(ctx context.Context, keepData bool) error {
	var errs []error
	if err := l.stopServices(ctx, keepData); err != nil {
		errs = append(errs, err)
	}
	if err := l.daemon.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := l.gatewayNetDown(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := l.net.Down(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(filepath.Join(ownerDir, l.Name+".dir")); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if !keepData && len(errs) == 0 {
		// Only what the lab wrote, never a whole directory a user named.
		for _, p := range []string{"libvirt", "consoles", "lab.json", "credentials.json", "hil-mock.db", "hil-mock.db-wal",
			"hil-mock.db-shm", "hil-mock.log", "bmid", "bmid.yaml", "bmid.log", "services.json", "daemon.out", "nvram",
			"postgres.log", "api-proxy.log"} {
			if err := os.RemoveAll(filepath.Join(l.Dir, p)); err != nil {
				errs = append(errs, err)
			}
		}
		for _, pat := range []string{"bmid-g*.yaml", "bmid-g*.log", "keepalived-g*.conf", "keepalived-g*.log"} {
			ms, _ := filepath.Glob(filepath.Join(l.Dir, pat))
			for _, p := range ms {
				if err := os.Remove(p); err != nil {
					errs = append(errs, err)
				}
			}
		}
		_ = os.Remove(l.Dir) // if empty
	}
	if len(errs) == 0 {
		l.log.Info("lab removed", "lab", l.Name, "kept_data", keepData)
	}
	return errors.Join(errs...)
}
