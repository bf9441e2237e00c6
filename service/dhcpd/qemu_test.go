package dhcpd_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/netnstest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/ipxe"
	"github.com/bmi-go/bmi/service/logging"
)

var noConfMAC = net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 0x42}

// qemuNodes: DHCP answers nodeMAC and noConfMAC; nodeMAC's boot config
// points at an iSCSI portal that refuses connections, so its script runs
// the retry path to the end; noConfMAC has no boot config.
type qemuNodes struct{}

func (qemuNodes) BootNode(_ context.Context, mac net.HardwareAddr) (string, error) {
	switch mac.String() {
	case nodeMAC.String():
		return "node1", nil
	case noConfMAC.String():
		return "node42", nil
	}
	return "", fault.Errorf(fault.NotFound, "no boot config for %s", mac)
}

func (qemuNodes) BootSpec(_ context.Context, mac net.HardwareAddr) (ipxe.Spec, error) {
	if mac.String() != nodeMAC.String() {
		return ipxe.Spec{}, fault.Errorf(fault.NotFound, "no boot config for %s", mac)
	}
	return ipxe.Spec{Node: "node1", Disk: "disk1", Portal: "10.199.1.1", Port: 3999, LUN: 1,
		TargetIQN: "iqn.2026-11.org.bmi:test.1", InitiatorIQN: "iqn.2026-11.org.bmi:node1",
		CHAP: &ipxe.CHAP{User: "node one", Secret: "p$a{s}s w", MutualUser: "tgt", MutualSecret: "back-secret-1"}}, nil
}

// TestQEMUIPXE boots QEMU's own iPXE ROM (package ipxe-qemu) from our DHCP
// and HTTP servers inside a namespace the test makes, and runs the
// generated scripts in it:
//   - a node whose disk cannot be reached: DHCP with user class iPXE, the
//     script over HTTP, its CHAP settings (plain and :hex) accepted, each
//     sanboot attempt with its back-off, the failure message and the
//     reboot (QEMU runs with -no-reboot, so the reboot ends it);
//   - a node without a boot config: the message, then iPXE exits and the
//     firmware moves on to its next boot device.
func TestQEMUIPXE(t *testing.T) {
	if testing.Short() {
		t.Skip("boots two VMs")
	}
	p, tap := vmSite(t, "bmitap0")
	tl := boot.NewTimeline()
	log := logging.Discard()
	ctx, cancel := context.WithCancel(context.Background())
	d := vmDHCP(tap, tl, log)
	r, err := ipxe.NewRenderer(ipxe.Options{Attempts: 2, FirstDelay: 1, RebootDelay: 0, NoConfigPause: 0})
	if err != nil {
		t.Fatal(err)
	}
	h := &ipxe.Server{Addr: "10.199.1.1:8080", Log: log,
		Handler: &ipxe.Handler{Specs: qemuNodes{}, Renderer: r, Log: log, Recorder: tl}}
	errs := []<-chan error{
		p.Server.Go(func() error { return d.Serve(ctx) }),
		p.Server.Go(func() error { return h.Serve(ctx) }),
	}
	defer func() {
		cancel()
		for _, e := range errs {
			if err := <-e; err != nil {
				t.Errorf("server: %v", err)
			}
		}
	}()

	t.Run("retry path", func(t *testing.T) {
		start := time.Now()
		flat, exited := runQEMU(t, p, tap, nodeMAC, "")
		if !exited {
			t.Error("QEMU did not end: the script's reboot did not happen")
		}
		for _, want := range []string{
			"BMI: node node1 boots disk disk1 from iscsi:10.199.1.1::3999:1:iqn.2026-11.org.bmi:test.1",
			"BMI: sanboot attempt 1 of 2",
			"BMI: sanboot failed, next attempt in 1 s",
			"BMI: sanboot attempt 2 of 2",
			"BMI-BOOT-FAILED node node1: could not boot disk disk1",
		} {
			if !strings.Contains(flat, want) {
				t.Errorf("console lacks %q", want)
			}
		}
		for _, bad := range []string{"attempt 3", "Could not set", "Invalid argument", "not found"} {
			if strings.Contains(flat, bad) {
				t.Errorf("console has %q", bad)
			}
		}
		for _, ev := range tl.Events(nodeMAC) {
			t.Logf("timeline +%6.3fs %-20s %s", ev.At.Sub(start).Seconds(), ev.Step, ev.Detail)
		}
	})
	t.Run("no boot config", func(t *testing.T) {
		flat, _ := runQEMU(t, p, tap, noConfMAC, "No bootable device")
		for _, want := range []string{
			"BMI-NO-BOOT-CONFIG 52:54:00:77:00:42: BMI has no boot config for this machine",
			"BMI: leaving network boot, the firmware tries the next boot device",
			"No bootable device",
		} {
			if !strings.Contains(flat, want) {
				t.Errorf("console lacks %q", want)
			}
		}
	})
}

// runQEMU boots a VM with mac from the network until it exits by itself
// or, when until is set, until its console shows until. It returns the
// console without ANSI escapes and line wraps, and whether QEMU exited.
func runQEMU(t *testing.T, p *netnstest.Pair, tap string, mac net.HardwareAddr, until string) (string, bool) {
	t.Helper()
	serial := filepath.Join(t.TempDir(), "serial.log")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	start := time.Now()
	cmd := p.Server.Command(ctx, "qemu-system-x86_64", "-name", "bmitest", "-machine", "pc,accel=tcg",
		"-m", "128", "-smp", "1", "-nographic", "-monitor", "none", "-serial", "file:"+serial,
		"-no-reboot", "-boot", "n",
		"-netdev", "tap,id=n0,ifname="+tap+",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac="+mac.String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	flat := func() string {
		b, _ := os.ReadFile(serial)
		// iPXE wraps its console at 80 columns: match on unwrapped text.
		return strings.ReplaceAll(clean(b), "\n", "")
	}
	exited := false
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case err := <-done:
			exited = true
			if err != nil {
				t.Errorf("qemu: %v: %s", err, out.String())
			}
			break loop
		case <-tick.C:
			if until != "" && strings.Contains(flat(), until) {
				break loop
			}
		case <-ctx.Done():
			t.Errorf("qemu still running after %v", time.Since(start).Round(time.Second))
			break loop
		}
	}
	if !exited {
		cancel() // kills QEMU
		<-done
	}
	text := flat()
	if t.Failed() {
		b, _ := os.ReadFile(serial)
		t.Logf("console after %v:\n%s", time.Since(start).Round(time.Second), clean(b))
	}
	return text, exited
}

// clean drops the ANSI escapes and carriage returns of a serial console.
func clean(b []byte) string {
	var out bytes.Buffer
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == 0x1b:
			for i++; i < len(b) && !(b[i] >= 'a' && b[i] <= 'z' || b[i] >= 'A' && b[i] <= 'Z'); i++ {
			}
		case b[i] == '\r':
		default:
			out.WriteByte(b[i])
		}
	}
	return out.String()
}

// vmSite makes the namespace pair of a test that boots VMs, with a tap
// named tap at 10.199.1.1/24 in the server's namespace; it skips (fails
// under CI) when QEMU, its iPXE ROMs or TUN/TAP are missing.
func vmSite(t *testing.T, tap string) (*netnstest.Pair, string) {
	t.Helper()
	testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	if _, err := os.Stat("/usr/lib/ipxe/qemu/pxe-virtio.rom"); err != nil {
		testenv.Missing(t, "iPXE ROMs for QEMU", "install the Debian package ipxe-qemu (make deps)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		testenv.Missing(t, "/dev/net/tun", "a kernel with TUN/TAP")
	}
	p := netnstest.New(t)
	for _, s := range [][]string{
		{"-n", p.Server.Name, "tuntap", "add", "dev", tap, "mode", "tap"},
		{"-n", p.Server.Name, "addr", "add", "10.199.1.1/24", "dev", tap},
		{"-n", p.Server.Name, "link", "set", tap, "up"},
	} {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return p, tap
}

// vmDHCP is the DHCP server of a vmSite: bmid's, on tap, for qemuNodes,
// iPXE scripts at 10.199.1.1:8080.
func vmDHCP(tap string, tl *boot.Timeline, log *slog.Logger) *dhcpd.Server {
	return &dhcpd.Server{
		Interfaces: []string{tap}, ServerIP: net.IPv4(10, 199, 1, 1),
		Pool: dhcpd.Pool{Start: net.IPv4(10, 199, 1, 100), End: net.IPv4(10, 199, 1, 110),
			Netmask: net.CIDRMask(24, 32), LeaseTime: 10 * time.Minute},
		BaseURL: "http://10.199.1.1:8080", Nodes: qemuNodes{}, Leases: dhcpd.NewMemoryLeases(),
		Log: log, Recorder: tl, RouterAdvertisements: true,
	}
}
