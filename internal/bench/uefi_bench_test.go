//go:build ceph_preview

package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/image"
	"github.com/bmi-go/bmi/lab/vm"
)

// firmwarePhases split a boot at console milestones (lab/vm
// BootMilestones): each phase ends at its milestone and starts where the
// one before ended. A BIOS machine's firmware is iPXE's ROM, so its "dhcp"
// is the firmware's DHCP and it has no separate iPXE phase.
var firmwarePhases = []struct {
	name       string
	bios, uefi string // the milestone ending the phase ("" = none: 0 s)
}{
	{"firmware (power on to DHCP start)", "configuring", "firmware"},
	{"DHCP (the firmware's)", "dhcp", "firmware-dhcp"},
	{"iPXE (download, start, its own DHCP)", "", "dhcp"},
	{"SAN login (script, sanboot login)", "san-login", "san-login"},
	{"kernel (loader, kernel + initrd over SAN, kernel start)", "init", "init"},
	{"OS login (iBFT, iscsistart)", "iscsi-login", "iscsi-login"},
	{"to marker (state record)", "marker", "marker"},
}

// BenchmarkBootFirmware boots the same golden image to its marker on a
// BIOS node, a UEFI node that PXE-boots and a UEFI node that HTTP-boots of
// one lab, one boot at a time, interleaved, 3 rounds (1 with QUICK), and
// splits each boot into firmwarePhases. Root only.
func BenchmarkBootFirmware(b *testing.B) {
	testenv.RequireRoot(b)
	for cmd, pkg := range lab.Commands {
		testenv.RequireCommand(b, cmd, pkg)
	}
	for name, pkg := range image.Tools {
		testenv.RequireCommand(b, name, pkg)
	}
	for _, f := range []string{vm.OVMFCode, vm.OVMFVars, image.SystemdBoot} {
		if _, err := os.Stat(f); err != nil {
			testenv.Missing(b, f, "install the Debian packages ovmf and systemd-boot-efi (make deps)")
		}
	}
	runs := 3
	if isQuick {
		runs = 1
	}
	// a lab of its own (name benchfw), beside BenchmarkBoot's
	bl := upLabWith(b, lab.Options{Name: "benchfw", Nodes: 3, UEFI: 1, UEFIHTTP: 1})
	b.Run("11-firmware", func(b *testing.B) { once(b, func() { benchFirmware(b, bl, runs) }) })
}

func benchFirmware(b *testing.B, bl *benchLab, runs int) {
	ctx := context.Background()
	s, done := section("11-firmware", "11. Boot by firmware: BIOS vs UEFI PXE vs UEFI HTTP boot",
		fmt.Sprintf("The same golden image (SYSLINUX for BIOS, systemd-boot for UEFI, one kernel and initramfs) booted to its marker from each node's own iSCSI clone "+
			"by three lab machines (TCG, 1 vCPU, 192 MiB): node-01 BIOS (SeaBIOS, iPXE ROM), node-02 UEFI (OVMF) PXE (TFTP snponly.efi), node-03 UEFI HTTP boot (snponly.efi over HTTP, no TFTP); "+
			"one boot at a time, interleaved, %d round(s); seconds from the power cycle through hil-mock, split at console milestones.", runs))
	defer done()
	type kind struct {
		subject string
		node    lab.Node
		rs      []bootResult
		errs    int
	}
	var kinds []*kind
	for _, name := range []string{"node-01", "node-02", "node-03"} {
		n, err := bl.l.Node(name)
		if err != nil {
			b.Fatal(err)
		}
		subject := map[string]string{vm.FirmwareUEFI: "UEFI PXE", vm.FirmwareUEFIHTTP: "UEFI HTTP"}[n.Firmware]
		if subject == "" {
			subject = "BIOS"
		}
		kinds = append(kinds, &kind{subject: subject, node: n})
	}
	for i := range runs {
		for _, k := range kinds {
			r, err := bl.netboot(ctx, k.node, lab.GoldenImage, bootTimeout)
			if err == nil {
				fmt.Printf("%s %d: boot %.1f s: %v\n", k.subject, i+1, r.boot.Seconds(), r.tl)
				k.rs = append(k.rs, r)
			} else {
				k.errs++
				fmt.Printf("%s %d failed: %v\n", k.subject, i+1, err)
				s.Note("%s run %d failed: %s", k.subject, i+1, errLine(err))
			}
			if err := bl.deprovision(k.node); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, k := range kinds {
		if len(k.rs) == 0 {
			continue
		}
		r := Durations("power on to marker", k.subject, "s", pick(k.rs, func(r bootResult) time.Duration { return r.boot }))
		r.Errors = k.errs
		s.Add(r)
	}
	for _, ph := range firmwarePhases {
		for _, k := range kinds {
			var d []time.Duration
			for _, r := range k.rs {
				if v, ok := phase(r.tl, k.subject == "BIOS", ph.name); ok {
					d = append(d, v)
				}
			}
			if len(d) > 0 {
				s.Add(Durations(ph.name, k.subject, "s", d))
			}
		}
	}
	for _, k := range kinds {
		if len(k.rs) > 0 {
			s.Add(Durations("QEMU CPU time", k.subject, "s", pick(k.rs, func(r bootResult) time.Duration { return r.cpu })))
		}
	}
	if u, bi := s.Find("power on to marker", "UEFI PXE"), s.Find("power on to marker", "BIOS"); u != nil && bi != nil {
		s.Ratio("UEFI PXE / BIOS, power on to marker (median)", u.Median, bi.Median)
	}
	if h, p := s.Find("power on to marker", "UEFI HTTP"), s.Find("power on to marker", "UEFI PXE"); h != nil && p != nil {
		s.Ratio("UEFI HTTP / UEFI PXE, power on to marker (median)", h.Median, p.Median)
	}
	s.Chart = &Chart{File: "firmware.svg", YLabel: "seconds (median)"}
	s.Note("phases end at console milestones (lab/vm BootMilestones): firmware at OVMF's '>>Start PXE/HTTP' (UEFI) or iPXE ROM's 'Configuring' (BIOS); " +
		"DHCP at the firmware's address; iPXE at iPXE's own address (UEFI only: the BIOS machines' firmware is iPXE); SAN login at 'Registered SAN device'; " +
		"kernel at the initramfs' first line; OS login at iscsistart's login; the rest to the marker")
	s.Note("under UEFI iPXE drives the NIC through the firmware's SNP (OVMF's virtio-net driver), under BIOS with its own virtio driver (QEMU's iPXE ROM); " +
		"the kernel phase includes the loader's read of the kernel and initramfs (13 MB) through iPXE's SAN device")
}

// phase returns the duration of the named firmwarePhases phase in tl.
func phase(tl vm.Timeline, bios bool, name string) (time.Duration, bool) {
	var start time.Duration
	for _, ph := range firmwarePhases {
		end := ph.uefi
		if bios {
			end = ph.bios
		}
		if end == "" {
			if ph.name == name {
				return 0, false
			}
			continue
		}
		at, ok := seenAt(tl, end)
		if !ok {
			return 0, false
		}
		if ph.name == name {
			return at - start, true
		}
		start = at
	}
	return 0, false
}

func seenAt(tl vm.Timeline, name string) (time.Duration, bool) {
	for _, s := range tl {
		if s.Name == name {
			return s.At, true
		}
	}
	return 0, false
}

// pick is f of each boot result.
func pick(rs []bootResult, f func(bootResult) time.Duration) []time.Duration {
	var out []time.Duration
	for _, r := range rs {
		out = append(out, f(r))
	}
	return out
}
