package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab/image"
	"github.com/bmi-go/bmi/lab/netns"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/service/logging"
)

func TestDomainXML(t *testing.T) {
	s := Spec{Name: "lab-node1", Host: "node1", MAC: "52:54:00:aa:00:01", Tap: "tap-node1", Serial: "/run/lab/node1.log"}
	x, err := DomainXML(s, BootPXE)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<domain type='qemu'>", "<boot dev='network'/>", "<mac address='52:54:00:aa:00:01'/>",
		"<target dev='tap-node1' managed='no'/>", "append='on'", "<entry name='serial'>node1</entry>", "<memory unit='MiB'>192</memory>"} {
		if !strings.Contains(x, want) {
			t.Errorf("domain XML lacks %s:\n%s", want, x)
		}
	}
	if strings.Contains(x, "<disk") {
		t.Error("diskless spec got a disk")
	}
	bad := map[string]Spec{
		"name with quote": {Name: "a'b", MAC: s.MAC, Tap: s.Tap, Serial: s.Serial},
		"upper-case MAC":  {Name: "a", MAC: "52:54:00:AA:00:01", Tap: s.Tap, Serial: s.Serial},
		"relative serial": {Name: "a", MAC: s.MAC, Tap: s.Tap, Serial: "x.log"},
		"disk with space": {Name: "a", MAC: s.MAC, Tap: s.Tap, Serial: s.Serial, Disk: "/a b"},
		"xml in host":     {Name: "a", Host: "<x>", MAC: s.MAC, Tap: s.Tap, Serial: s.Serial},
	}
	for name, spec := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := DomainXML(spec, BootPXE); !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := DomainXML(s, "floppy"); !errors.Is(err, fault.ErrInvalid) {
		t.Fatalf("boot device floppy: %v, want ErrInvalid", err)
	}
	if strings.Contains(x, "pflash") || strings.Contains(x, "<nvram") || strings.Contains(x, "fwcfg") || !strings.Contains(x, "useserial") {
		t.Errorf("BIOS machine has UEFI parts or no serial BIOS console:\n%s", x)
	}
}

func TestDomainXMLUEFI(t *testing.T) {
	base := Spec{Name: "lab-node2", Host: "node2", MAC: "52:54:00:aa:00:02", Tap: "tap-node2", Serial: "/run/lab/node2.log",
		NVRAM: "/run/lab/nvram/node2.fd"}
	tests := map[string]struct {
		firmware      string
		want, wantNot []string
	}{
		"pxe": {FirmwareUEFI,
			[]string{"<loader readonly='yes' type='pflash'>" + OVMFCode + "</loader>", "<nvram template='" + OVMFVars + "'>/run/lab/nvram/node2.fd</nvram>",
				"<entry name='opt/org.tianocore/IPv6PXESupport'>n</entry>", "<rom enabled='no'/>", "<boot dev='network'/>"},
			[]string{"IPv4PXESupport", "useserial"}},
		"http": {FirmwareUEFIHTTP,
			[]string{"pflash", "<entry name='opt/org.tianocore/IPv4PXESupport'>n</entry>", "<entry name='opt/org.tianocore/IPv6PXESupport'>n</entry>", "<rom enabled='no'/>"},
			[]string{"useserial"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := base
			s.Firmware = tc.firmware
			x, err := DomainXML(s, BootPXE)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(x, w) {
					t.Errorf("lacks %s:\n%s", w, x)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(x, w) {
					t.Errorf("has %s:\n%s", w, x)
				}
			}
		})
	}
	bad := map[string]Spec{
		"unknown firmware":  {Name: "a", MAC: base.MAC, Tap: base.Tap, Serial: base.Serial, Firmware: "coreboot"},
		"uefi, no nvram":    {Name: "a", MAC: base.MAC, Tap: base.Tap, Serial: base.Serial, Firmware: FirmwareUEFI},
		"uefi, bad nvram":   {Name: "a", MAC: base.MAC, Tap: base.Tap, Serial: base.Serial, Firmware: FirmwareUEFI, NVRAM: "/a'b"},
		"uefi, lkrn kernel": {Name: "a", MAC: base.MAC, Tap: base.Tap, Serial: base.Serial, Firmware: FirmwareUEFI, NVRAM: base.NVRAM, Kernel: "/k"},
	}
	for name, spec := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := DomainXML(spec, BootPXE); !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestConsoleWaitFor(t *testing.T) {
	p := filepath.Join(t.TempDir(), "serial.log")
	c := Console{Path: p}
	if err := os.WriteFile(p, []byte("old BMI-LAB-BOOTED old mode=local \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	from := c.Offset()
	go func() {
		time.Sleep(200 * time.Millisecond)
		f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("\x1b[?7lBMI-LAB-STATE none\r\nBMI-LAB-BOOTED no")
		time.Sleep(200 * time.Millisecond)
		f.WriteString("de1 mode=ibft uptime=1.0\r\n")
		f.Close()
	}()
	m, err := c.WaitFor(context.Background(), from, BootedRE, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Groups[1] != "node1" || m.Groups[2] != "ibft" {
		t.Fatalf("groups %q: a marker split across writes must not match early, an old one not at all", m.Groups)
	}
	if _, err := c.WaitFor(context.Background(), m.End, BootedRE, 300*time.Millisecond); !errors.Is(err, fault.ErrUnavailable) {
		t.Fatalf("no new marker: %v, want ErrUnavailable", err)
	}
}

// TestLocalBootAndPower boots the golden image from a local disk under
// the lab's own libvirtd (QEMU TCG) through the power driver: power on,
// marker and state record, the machine powers itself off, power on again
// and cycle early in that boot (the next boot finds the first boot's
// record), power off, boot device; then stops libvirtd and removes the network and
// checks nothing is left.
func TestLocalBootAndPower(t *testing.T) {
	testenv.RequireRoot(t)
	for cmd, pkg := range map[string]string{"libvirtd": "libvirt-daemon-system", "virtlogd": "libvirt-daemon-system",
		"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils", "unshare": "util-linux", "ip": "iproute2"} {
		testenv.RequireCommand(t, cmd, pkg)
	}
	for name, pkg := range image.Tools {
		testenv.RequireCommand(t, name, pkg)
	}
	ctx := context.Background()
	log := logging.Discard()
	img, err := image.Build(ctx, image.Options{CacheDir: filepath.Join(os.TempDir(), "bmi-lab-test-images"), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("golden image %s (cached %v, %v)", img.Path, img.Cached, img.Took.Round(time.Millisecond))

	n, err := netns.New(netns.Config{Name: "tvmboot"}, log)
	if err != nil {
		t.Fatal(err)
	}
	_ = n.Down(ctx)
	if err := n.Up(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Down(context.Background()) })
	if err := n.AddTap(ctx, "tap-n1"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d := NewDaemon(n.Namespace(), filepath.Join(dir, "libvirt"), log)
	took, err := d.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	t.Logf("libvirtd + virtlogd answered after %v", took.Round(time.Millisecond))
	if again, err := d.Start(ctx); err != nil || again != 0 {
		t.Fatalf("second Start: %v, %v; want the running pair reused", again, err)
	}

	m := NewMachines(d.Socket(), log)
	defer m.Close()
	disk := filepath.Join(dir, "n1.qcow2")
	if err := NewOverlay(ctx, img.Path, disk); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "tvmboot-n1", Host: "n1", MAC: "52:54:00:7e:00:01", Tap: "tap-n1", MemoryMiB: 192,
		Disk: disk, Serial: filepath.Join(dir, "n1.serial.log")}
	if err := m.Define(ctx, spec, BootDisk); err != nil {
		t.Fatal(err)
	}
	pd := NewPowerDriver(m)
	node := hilmock.Node{Name: "n1", PowerAddress: spec.Name}
	con := Console{Path: spec.Serial}
	status := func() string {
		t.Helper()
		s, err := pd.PowerStatus(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	waitOff := func() {
		t.Helper()
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if status() == hilmock.PowerOffState {
				return
			}
		}
		t.Fatal("machine did not power off within 30 s of its marker")
	}
	// boot powers on with op and waits for the marker; it returns the state
	// record the guest printed.
	boot := func(what string, op func() error) string {
		t.Helper()
		from := con.Offset()
		start := time.Now()
		if err := op(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		tl, err := con.Timeline(ctx, from, start, BootMilestones, 120*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		mk, err := con.WaitFor(ctx, from, BootedRE, time.Second)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if mk.Groups[1] != "n1" || mk.Groups[2] != "local" {
			t.Fatalf("%s: marker %q, want host n1, mode local", what, mk.Groups[0])
		}
		st, err := con.WaitFor(ctx, from, StateRE, time.Second)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: state %q; timeline from power on: %v", what, st.Groups[1], tl)
		waitOff()
		return st.Groups[1]
	}

	if s := status(); s != hilmock.PowerOffState {
		t.Fatalf("defined machine is %s, want off", s)
	}
	if got := boot("first boot", func() error { return pd.PowerOn(ctx, node) }); got != "none" {
		t.Fatalf("first boot found state %q, want none", got)
	}
	// Power on again, and power cycle while the firmware runs: the
	// interrupted boot writes nothing, the next one finds the first
	// boot's record.
	got := boot("power cycle mid-boot", func() error {
		from := con.Offset()
		if err := pd.PowerOn(ctx, node); err != nil {
			return err
		}
		if _, err := con.WaitFor(ctx, from, regexp.MustCompile(`Booting from Hard Disk`), 60*time.Second); err != nil {
			return err
		}
		if s := status(); s != hilmock.PowerOnState {
			t.Errorf("running machine is %s", s)
		}
		return pd.PowerCycle(ctx, node, true)
	})
	if got != "n1 1" {
		t.Fatalf("boot after the cycle found state %q, want the first boot's record n1 1", got)
	}
	if err := pd.PowerCycle(ctx, node, false); err != nil { // cycle of an off machine: powers it on
		t.Fatal(err)
	}
	if s := status(); s != hilmock.PowerOnState {
		t.Fatalf("after cycling an off machine it is %s, want on", s)
	}
	if err := pd.PowerOff(ctx, node); err != nil {
		t.Fatal(err)
	}
	if s := status(); s != hilmock.PowerOffState {
		t.Fatalf("after power off: %s", s)
	}
	if err := pd.PowerOff(ctx, node); err != nil {
		t.Fatalf("power off of an off machine: %v", err)
	}
	for _, dev := range []string{hilmock.BootPXE, hilmock.BootNone, hilmock.BootDisk} {
		if err := pd.SetBootDevice(ctx, node, dev); err != nil {
			t.Fatal(err)
		}
		if got, err := m.BootDevice(ctx, spec.Name); err != nil || got != dev {
			t.Fatalf("boot device = %q, %v; want %s", got, err, dev)
		}
	}
	if err := pd.PowerOn(ctx, hilmock.Node{Name: "x", PowerAddress: "nosuch"}); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("unknown machine: %v, want ErrNotFound", err)
	}
	if err := m.Undefine(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}

	// Teardown leaves nothing: no libvirtd, virtlogd or QEMU, no namespace.
	lv, vl := d.Libvirtd, d.Virtlogd
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if lv.Alive() || vl.Alive() {
		t.Fatal("libvirtd or virtlogd still runs after Stop")
	}
	if pids, _ := n.Pids(ctx); len(pids) != 0 {
		t.Fatalf("processes left in the namespace after Stop: %v", pids)
	}
	if err := n.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if n.Exists() {
		t.Fatal("namespace left")
	}
}
