package vm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab/image"
	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/lab/netns"
	"github.com/bmi-go/bmi/service/hilmock"
	"github.com/bmi-go/bmi/service/logging"
)

// ibftScript sanboots the node's iSCSI disk with a static address, so no
// DHCP server is needed: iPXE (ipxe.lkrn, booted directly) publishes the
// iBFT, whose NIC record carries the host name.
const ibftScript = `#!ipxe
ifopen net0
set net0/ip 10.77.0.11
set net0/netmask 255.255.255.0
set hostname node7
set initiator-iqn iqn.2024-01.lab.bmi.initiator:node7
sanboot iscsi:10.77.0.1:::1:iqn.2024-01.lab.bmi:node7 || goto failed
:failed
echo BMI-LAB-FAILED sanboot
`

// TestIBFTBoot boots the golden image as a diskless node does: iPXE
// sanboots its iSCSI disk (tgtd in the lab namespace, the disk on LUN 1),
// the kernel and initramfs come over iSCSI, the init logs into the same
// disk from the iBFT with iscsistart and writes its state record, which
// the host then reads from the disk file.
func TestIBFTBoot(t *testing.T) {
	testenv.RequireRoot(t)
	for cmd, pkg := range map[string]string{"libvirtd": "libvirt-daemon-system", "virtlogd": "libvirt-daemon-system",
		"qemu-system-x86_64": "qemu-system-x86", "tgtd": "tgt", "tgtadm": "tgt", "unshare": "util-linux", "ip": "iproute2"} {
		testenv.RequireCommand(t, cmd, pkg)
	}
	for name, pkg := range image.Tools {
		testenv.RequireCommand(t, name, pkg)
	}
	if _, err := os.Stat("/boot/ipxe.lkrn"); err != nil {
		testenv.Missing(t, "/boot/ipxe.lkrn", "install the Debian package ipxe (make deps)")
	}
	ctx := context.Background()
	log := logging.Discard()
	img, err := image.Build(ctx, image.Options{CacheDir: filepath.Join(os.TempDir(), "bmi-lab-test-images"), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "node7.img")
	if _, err := proc.Run(ctx, "cp", "--sparse=always", img.Path, disk); err != nil {
		t.Fatal(err)
	}

	n, err := netns.New(netns.Config{Name: "tibft"}, log)
	if err != nil {
		t.Fatal(err)
	}
	_ = n.Down(ctx)
	if err := n.Up(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Down(context.Background()) })
	if err := n.AddTap(ctx, "tap-i1"); err != nil {
		t.Fatal(err)
	}
	if err := n.SetVLAN(ctx, "tap-i1", n.Config().ProvisioningVLAN); err != nil {
		t.Fatal(err)
	}

	// tgtd in the namespace, on the bridge's address; its own control port.
	const ctl = "7391"
	tgt := []string{"tgtadm", "-C", ctl, "--lld", "iscsi"}
	if _, err := proc.StartDaemon([]string{"ip", "netns", "exec", n.Namespace(), "tgtd", "-f", "-C", ctl,
		"--iscsi", "portal=" + n.Config().Bridge4.Addr().String() + ":3260"}, nil, filepath.Join(dir, "tgtd.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = proc.Run(context.Background(), "tgtadm", "-C", ctl, "--op", "delete", "--mode", "system")
	})
	var tgtErr error
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, tgtErr = proc.Run(ctx, append(tgt, "--op", "show", "--mode", "target")...); tgtErr == nil {
			break
		}
	}
	if tgtErr != nil {
		t.Fatalf("tgtd did not start: %v", tgtErr)
	}
	for _, args := range [][]string{
		{"--op", "new", "--mode", "target", "--tid", "1", "-T", "iqn.2024-01.lab.bmi:node7"},
		{"--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "--backing-store", disk},
		{"--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL"},
	} {
		if _, err := proc.Run(ctx, append(tgt, args...)...); err != nil {
			t.Fatal(err)
		}
	}

	d := NewDaemon(n.Namespace(), filepath.Join(dir, "libvirt"), log)
	if _, err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	m := NewMachines(d.Socket(), log)
	defer m.Close()
	script := filepath.Join(dir, "sanboot.ipxe")
	if err := os.WriteFile(script, []byte(ibftScript), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "tibft-node7", Host: "not-this-name", MAC: "52:54:00:7e:00:07", Tap: "tap-i1", MemoryMiB: 256,
		Serial: filepath.Join(dir, "node7.serial.log"), Kernel: "/boot/ipxe.lkrn", Initrd: script}
	if err := m.Define(ctx, spec, BootPXE); err != nil {
		t.Fatal(err)
	}
	pd := NewPowerDriver(m)
	node := hilmock.Node{Name: "node7", PowerAddress: spec.Name}
	con := Console{Path: spec.Serial}
	start := time.Now()
	if err := pd.PowerOn(ctx, node); err != nil {
		t.Fatal(err)
	}
	tl, err := con.Timeline(ctx, 0, start, BootMilestones, 180*time.Second)
	if err != nil {
		b, _ := os.ReadFile(spec.Serial)
		t.Fatalf("%v\nconsole:\n%s", err, b)
	}
	mk, err := con.WaitFor(ctx, 0, BootedRE, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("iBFT boot: %s; timeline from power on: %v", strings.TrimSpace(mk.Groups[0]), tl)
	if mk.Groups[1] != "node7" || mk.Groups[2] != "ibft" {
		t.Fatalf("marker %q: want host node7 (from the iBFT, not SMBIOS) and mode ibft", mk.Groups[0])
	}
	b, _ := os.ReadFile(spec.Serial)
	for _, want := range []string{"BMI-LAB-IBFT present", "BMI-LAB-SESSION session1 target=iqn.2024-01.lab.bmi:node7", "BMI-LAB-STATE none"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("console lacks %q", want)
		}
	}
	// The record went over iSCSI into the disk file.
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if s, _ := pd.PowerStatus(ctx, node); s == hilmock.PowerOffState {
			break
		}
		if time.Now().After(end) {
			t.Fatal("node did not power off after its marker")
		}
	}
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := make([]byte, 32)
	if _, err := f.ReadAt(rec, image.StateOffset); err != nil {
		t.Fatal(err)
	}
	if got := string(bytes.TrimRight(rec, "\x00")); got != "BMI1 node7 1\n" {
		t.Fatalf("state record on the disk = %q, want \"BMI1 node7 1\\n\"", got)
	}
}
