package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"text/template"

	"github.com/digitalocean/go-libvirt"

	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/service/fault"
)

// Spec describes one lab machine.
type Spec struct {
	// Name is the libvirt domain name (the PowerAddress hil-mock passes).
	Name string
	// Host is the machine's host name, given to the guest as its SMBIOS
	// system serial (the golden image's fallback host name).
	Host string
	// MAC of the machine's one NIC.
	MAC string
	// Tap is the lab tap the NIC is plugged into.
	Tap string
	// MemoryMiB of the guest (default 192).
	MemoryMiB int
	// Disk is an optional local disk (qcow2), e.g. an overlay of the golden
	// image for a local-boot baseline; empty for a diskless node.
	Disk string
	// Serial is the file the serial console is appended to.
	Serial string
	// Kernel and Initrd, when set, are booted directly instead of the
	// firmware's boot order: e.g. iPXE's ipxe.lkrn with an iPXE script as
	// its initrd, to sanboot without a DHCP server.
	Kernel string
	Initrd string
	// Firmware is FirmwareBIOS (SeaBIOS, also when empty), FirmwareUEFI
	// (OVMF, network boot by PXE) or FirmwareUEFIHTTP (OVMF, network boot
	// by UEFI HTTP boot only: its PXE options are switched off).
	Firmware string
	// NVRAM is the UEFI machine's variable store, a copy of OVMF's
	// template that libvirt makes at the first start (UEFI only).
	NVRAM string
}

// Firmware kinds of a lab machine.
const (
	FirmwareBIOS     = "bios"
	FirmwareUEFI     = "uefi"
	FirmwareUEFIHTTP = "uefi-http"
)

// OVMF's code and variable store template (Debian's ovmf): the 4 MiB
// build without Secure Boot.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// ValidFirmware reports whether f names a firmware kind ("" is BIOS).
func ValidFirmware(f string) bool {
	switch f {
	case "", FirmwareBIOS, FirmwareUEFI, FirmwareUEFIHTTP:
		return true
	}
	return false
}

// IsUEFI reports whether the firmware kind f is a UEFI one.
func IsUEFI(f string) bool { return f == FirmwareUEFI || f == FirmwareUEFIHTTP }

var (
	nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)
	macRE  = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	pathRE = regexp.MustCompile(`^/[A-Za-z0-9._/+-]*$`)
)

func (s Spec) validate() error {
	switch {
	case !nameRE.MatchString(s.Name):
		return fmt.Errorf("machine name %q: want letters, digits, '.', '_' or '-': %w", s.Name, fault.ErrInvalid)
	case s.Host != "" && !nameRE.MatchString(s.Host):
		return fmt.Errorf("machine %s: host name %q: %w", s.Name, s.Host, fault.ErrInvalid)
	case !macRE.MatchString(s.MAC):
		return fmt.Errorf("machine %s: MAC %q: want lower-case aa:bb:cc:dd:ee:ff: %w", s.Name, s.MAC, fault.ErrInvalid)
	case !nameRE.MatchString(s.Tap):
		return fmt.Errorf("machine %s: tap %q: %w", s.Name, s.Tap, fault.ErrInvalid)
	case s.Disk != "" && !pathRE.MatchString(s.Disk):
		return fmt.Errorf("machine %s: disk path %q: want an absolute path of [A-Za-z0-9._/+-]: %w", s.Name, s.Disk, fault.ErrInvalid)
	case s.Kernel != "" && !pathRE.MatchString(s.Kernel), s.Initrd != "" && !pathRE.MatchString(s.Initrd):
		return fmt.Errorf("machine %s: kernel %q / initrd %q: want absolute paths of [A-Za-z0-9._/+-]: %w", s.Name, s.Kernel, s.Initrd, fault.ErrInvalid)
	case !pathRE.MatchString(s.Serial):
		return fmt.Errorf("machine %s: serial path %q: want an absolute path of [A-Za-z0-9._/+-]: %w", s.Name, s.Serial, fault.ErrInvalid)
	case !ValidFirmware(s.Firmware):
		return fmt.Errorf("machine %s: firmware %q: want bios, uefi or uefi-http: %w", s.Name, s.Firmware, fault.ErrInvalid)
	case IsUEFI(s.Firmware) && !pathRE.MatchString(s.NVRAM):
		return fmt.Errorf("machine %s: UEFI variable store path %q: want an absolute path of [A-Za-z0-9._/+-]: %w", s.Name, s.NVRAM, fault.ErrInvalid)
	case IsUEFI(s.Firmware) && s.Kernel != "":
		return fmt.Errorf("machine %s: a direct kernel boot is for BIOS machines: %w", s.Name, fault.ErrInvalid)
	case s.MemoryMiB < 0 || s.MemoryMiB > 65536:
		return fmt.Errorf("machine %s: memory %d MiB: %w", s.Name, s.MemoryMiB, fault.ErrInvalid)
	}
	return nil
}

// Boot devices (hil-mock's values).
const (
	BootPXE  = "pxe"
	BootDisk = "disk"
	BootNone = "none"
)

// bootXML maps a boot device to the domain's <os><boot> elements. "none"
// (no override) is the lab machines' firmware default: PXE first, then disk.
var bootXML = map[string]string{
	BootPXE:  "<boot dev='network'/>",
	BootDisk: "<boot dev='hd'/>",
	BootNone: "<boot dev='network'/><boot dev='hd'/>",
}

// domainTmpl is a TCG machine (no KVM here): SeaBIOS and iPXE print to the
// serial port (useserial), which is appended to a file; the NIC's option ROM
// is iPXE from the ipxe-qemu package, found by QEMU on its own. A UEFI
// machine runs OVMF from flash with its own variable store; OVMF prints
// to the serial port by itself and boots the NIC with its own PXE or HTTP
// boot client (VirtioNetDxe, PxeBcDxe, HttpBootDxe): its NIC has no
// option ROM, or iPXE's EFI ROM (efi-virtio.rom) would take the NIC's
// boot option and boot the node itself, as no server's firmware does. Its PXE options (the UEFI HTTP boot machine) and its IPv6
// PXE option (every UEFI machine: the lab's DHCP is IPv4; a real server's
// DHCPv6 attempt would only add its timeout) are switched off through
// OVMF's fw_cfg knobs (opt/org.tianocore/IPv4PXESupport, IPv6PXESupport).
var domainTmpl = template.Must(template.New("domain").Parse(`<domain type='qemu'>
  <name>{{.Name}}</name>
  <memory unit='MiB'>{{.MemoryMiB}}</memory>
  <vcpu>1</vcpu>
  <sysinfo type='smbios'><system><entry name='serial'>{{.Host}}</entry></system></sysinfo>
{{- if .UEFI}}
  <sysinfo type='fwcfg'>
{{- if .HTTPOnly}}
    <entry name='opt/org.tianocore/IPv4PXESupport'>n</entry>
{{- end}}
    <entry name='opt/org.tianocore/IPv6PXESupport'>n</entry>
  </sysinfo>
{{- end}}
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
{{- if .UEFI}}
    <loader readonly='yes' type='pflash'>{{.Code}}</loader>
    <nvram template='{{.Vars}}'>{{.NVRAM}}</nvram>
{{- end}}
    {{.Boot}}
{{- if .Kernel}}
    <kernel>{{.Kernel}}</kernel>
{{- if .Initrd}}
    <initrd>{{.Initrd}}</initrd>
{{- end}}
{{- end}}
{{- if not .UEFI}}
    <bios useserial='yes'/>
{{- end}}
    <smbios mode='sysinfo'/>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
{{- if .Disk}}
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{{.Disk}}'/><target dev='vda' bus='virtio'/></disk>
{{- end}}
    <interface type='ethernet'><mac address='{{.MAC}}'/><target dev='{{.Tap}}' managed='no'/><model type='virtio'/>{{if .UEFI}}<rom enabled='no'/>{{end}}</interface>
    <serial type='file'><source path='{{.Serial}}' append='on'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
`))

// DomainXML returns the libvirt domain XML of s with boot device boot.
func DomainXML(s Spec, boot string) (string, error) {
	if err := s.validate(); err != nil {
		return "", err
	}
	bx, ok := bootXML[boot]
	if !ok {
		return "", fmt.Errorf("machine %s: boot device %q: want pxe, disk or none: %w", s.Name, boot, fault.ErrInvalid)
	}
	if s.MemoryMiB == 0 {
		s.MemoryMiB = 192
	}
	if s.Host == "" {
		s.Host = s.Name
	}
	var b bytes.Buffer
	err := domainTmpl.Execute(&b, struct {
		Spec
		Boot, Code, Vars string
		UEFI, HTTPOnly   bool
	}{s, bx, OVMFCode, OVMFVars, IsUEFI(s.Firmware), s.Firmware == FirmwareUEFIHTTP})
	return b.String(), err
}

// Machines is a connection to a lab's libvirtd. It is safe for concurrent
// use; it reconnects when libvirtd was restarted.
type Machines struct {
	socket string
	log    *slog.Logger
	mu     sync.Mutex
	l      *libvirt.Libvirt
}

// NewMachines returns a client of the libvirtd listening on socket
// (Daemon.Socket). It connects on first use.
func NewMachines(socket string, log *slog.Logger) *Machines {
	return &Machines{socket: socket, log: log}
}

// conn returns a live connection.
func (m *Machines) conn() (*libvirt.Libvirt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.l != nil && m.l.IsConnected() {
		return m.l, nil
	}
	l, err := dial(m.socket)
	if err != nil {
		return nil, fmt.Errorf("libvirtd at %s: %v: %w", m.socket, err, fault.ErrUnavailable)
	}
	m.l = l
	return l, nil
}

// Close disconnects.
func (m *Machines) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.l == nil {
		return nil
	}
	err := m.l.Disconnect()
	m.l = nil
	return err
}

// Define defines (or redefines) the machine s with boot device boot. A
// running machine keeps running; the definition applies at its next start.
func (m *Machines) Define(_ context.Context, s Spec, boot string) error {
	x, err := DomainXML(s, boot)
	if err != nil {
		return err
	}
	l, err := m.conn()
	if err != nil {
		return err
	}
	// Redefining an existing domain must name its UUID.
	if old, err := l.DomainLookupByName(s.Name); err == nil {
		u := old.UUID
		id := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
		x = strings.Replace(x, "</name>", "</name>\n  <uuid>"+id+"</uuid>", 1)
	}
	if _, err := l.DomainDefineXML(x); err != nil {
		return fmt.Errorf("define machine %s: %w", s.Name, err)
	}
	return nil
}

// Undefine powers the machine off and removes its definition; a machine
// that does not exist is not an error.
func (m *Machines) Undefine(ctx context.Context, name string) error {
	if err := m.Off(ctx, name); err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return nil
		}
		return err
	}
	l, dom, err := m.lookup(name)
	if err != nil {
		if errors.Is(err, fault.ErrNotFound) {
			return nil
		}
		return err
	}
	// DomainUndefineNvram: a UEFI machine's variable store goes with it
	// (libvirt refuses to undefine it otherwise); no-op for BIOS.
	if err := l.DomainUndefineFlags(dom, libvirt.DomainUndefineNvram); err != nil && !libvirt.IsNotFound(err) {
		return fmt.Errorf("undefine machine %s: %w", name, err)
	}
	return nil
}

func (m *Machines) lookup(name string) (*libvirt.Libvirt, libvirt.Domain, error) {
	l, err := m.conn()
	if err != nil {
		return nil, libvirt.Domain{}, err
	}
	dom, err := l.DomainLookupByName(name)
	if err != nil {
		if libvirt.IsNotFound(err) {
			return nil, libvirt.Domain{}, fmt.Errorf("machine %s: %w", name, fault.ErrNotFound)
		}
		return nil, libvirt.Domain{}, fmt.Errorf("machine %s: %w", name, err)
	}
	return l, dom, nil
}

// Running reports whether the machine is powered on.
func (m *Machines) Running(_ context.Context, name string) (bool, error) {
	l, dom, err := m.lookup(name)
	if err != nil {
		return false, err
	}
	st, _, err := l.DomainGetState(dom, 0)
	if err != nil {
		if libvirt.IsNotFound(err) {
			return false, fmt.Errorf("machine %s: %w", name, fault.ErrNotFound)
		}
		return false, fmt.Errorf("machine %s: state: %w", name, err)
	}
	// A domain that is shutting down still has its QEMU: it counts as on
	// until it is shut off, or a power on would fail ("already running").
	switch libvirt.DomainState(st) {
	case libvirt.DomainShutoff, libvirt.DomainCrashed, libvirt.DomainNostate:
		return false, nil
	}
	return true, nil
}

// On powers the machine on; a running machine is left alone.
func (m *Machines) On(ctx context.Context, name string) error {
	on, err := m.Running(ctx, name)
	if err != nil || on {
		return err
	}
	l, dom, err := m.lookup(name)
	if err != nil {
		return err
	}
	if err := l.DomainCreate(dom); err != nil {
		return fmt.Errorf("power on machine %s: %w", name, err)
	}
	m.log.Debug("machine powered on", "machine", name)
	return nil
}

// Off powers the machine off hard (pulls the plug); an off machine is left
// alone.
func (m *Machines) Off(ctx context.Context, name string) error {
	on, err := m.Running(ctx, name)
	if err != nil || !on {
		return err
	}
	l, dom, err := m.lookup(name)
	if err != nil {
		return err
	}
	if err := l.DomainDestroy(dom); err != nil {
		// It may have powered itself off in between.
		if on, err2 := m.Running(ctx, name); err2 == nil && !on {
			return nil
		}
		return fmt.Errorf("power off machine %s: %w", name, err)
	}
	m.log.Debug("machine powered off", "machine", name)
	return nil
}

// Cycle powers the machine off (if on) and on again, so that a boot device
// set since the last start applies. The lab's guests do not handle ACPI
// reboot requests, so there is no soft variant.
func (m *Machines) Cycle(ctx context.Context, name string) error {
	if err := m.Off(ctx, name); err != nil {
		return err
	}
	return m.On(ctx, name)
}

var bootRE = regexp.MustCompile(`\s*<boot dev='[a-z]+'/>`)

// SetBootDevice changes the boot device of the machine's definition: it
// applies at the next power on or cycle.
func (m *Machines) SetBootDevice(_ context.Context, name, dev string) error {
	bx, ok := bootXML[dev]
	if !ok {
		return fmt.Errorf("machine %s: boot device %q: want pxe, disk or none: %w", name, dev, fault.ErrInvalid)
	}
	l, dom, err := m.lookup(name)
	if err != nil {
		return err
	}
	x, err := l.DomainGetXMLDesc(dom, libvirt.DomainXMLInactive)
	if err != nil {
		return fmt.Errorf("machine %s: read definition: %w", name, err)
	}
	x = bootRE.ReplaceAllString(x, "")
	i := strings.Index(x, "</type>")
	if i < 0 {
		return fmt.Errorf("machine %s: definition has no <os><type>: %w", name, fault.ErrInternal)
	}
	i += len("</type>")
	x = x[:i] + bx + x[i:]
	if _, err := l.DomainDefineXML(x); err != nil {
		return fmt.Errorf("machine %s: set boot device %s: %w", name, dev, err)
	}
	return nil
}

// BootDevice returns the machine's boot device as SetBootDevice names it.
func (m *Machines) BootDevice(_ context.Context, name string) (string, error) {
	l, dom, err := m.lookup(name)
	if err != nil {
		return "", err
	}
	x, err := l.DomainGetXMLDesc(dom, libvirt.DomainXMLInactive)
	if err != nil {
		return "", fmt.Errorf("machine %s: read definition: %w", name, err)
	}
	var got string
	for _, b := range bootRE.FindAllString(x, -1) {
		got += strings.TrimSpace(b)
	}
	for dev, bx := range bootXML {
		if got == bx {
			return dev, nil
		}
	}
	return "", fmt.Errorf("machine %s: unknown boot order %q: %w", name, got, fault.ErrInternal)
}

// Names returns the names of all defined machines.
func (m *Machines) Names(_ context.Context) ([]string, error) {
	l, err := m.conn()
	if err != nil {
		return nil, err
	}
	doms, _, err := l.ConnectListAllDomains(1, 0)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	var names []string
	for _, d := range doms {
		names = append(names, d.Name)
	}
	return names, nil
}

// NewOverlay creates a qcow2 disk at path backed by the raw image backing
// (copy on write: the golden image is never written).
func NewOverlay(ctx context.Context, backing, path string) error {
	if _, err := proc.Run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", backing, path); err != nil {
		return fmt.Errorf("overlay of %s: %w", backing, err)
	}
	return nil
}

// NewDisk creates an empty qcow2 disk of size bytes at path: the blank
// local disk of a machine that an installer writes.
func NewDisk(ctx context.Context, path string, size int64) error {
	if size <= 0 {
		return fmt.Errorf("disk %s: size %d: %w", path, size, fault.ErrInvalid)
	}
	if _, err := proc.Run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", path, fmt.Sprint(size)); err != nil {
		return fmt.Errorf("empty disk %s: %w", path, err)
	}
	return nil
}
