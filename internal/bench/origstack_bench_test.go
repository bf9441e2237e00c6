//go:build ceph_preview

package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/image"
	"github.com/bmi-go/bmi/lab/netns"
	"github.com/bmi-go/bmi/lab/vm"
)

// The original stack of section 9 runs on a VLAN of its own in the lab
// namespace (bmid does not see its DHCP), with its own addresses, tgtd
// control port and golden image.
const (
	origVLAN   = 3901
	origCtl    = "9"
	origGolden = "bench-orig-golden"
	origSnap   = "golden"
)

var (
	origAddr4 = netip.MustParsePrefix("10.201.77.1/24")
	origAddr6 = netip.MustParsePrefix("fd42:bb1:77:77::1/64")
)

// origChain is how the original stack's DHCP points a node at its disk.
type origChain struct {
	name string
	// pxelinux: the original's deployment (DHCP filename pxelinux.0, a
	// pxelinux.cfg/01-<mac> menu that loads ipxe.lkrn with the node's
	// script as its initrd); otherwise the PXE ROM (iPXE) is given the
	// node's script by TFTP at once.
	pxelinux bool
}

var origChains = []origChain{
	{name: "original stack, as deployed (dnsmasq -> pxelinux -> ipxe.lkrn -> sanboot from tgtd)", pxelinux: true},
	{name: "original stack, iPXE script chain (dnsmasq -> script -> sanboot from tgtd)"},
}

// origMilestones are the lab's boot milestones with PXELINUX's banner.
var origMilestones = func() []vm.Milestone {
	var ms []vm.Milestone
	for _, m := range vm.BootMilestones {
		if m.Name == "san-login" {
			ms = append(ms, vm.Milestone{Name: "pxelinux", RE: regexp.MustCompile(`PXELINUX \d`)})
		}
		ms = append(ms, m)
	}
	return ms
}()

// origStack is the serving side of the original BMI as its Ansible roles
// deployed it (shared/reference/bmi-original.md): dnsmasq for DHCP and
// TFTP, tgtd with the rbd backing store for iSCSI, a target per node
// written from the original's tgt template and loaded by tgt-admin, the
// original's iPXE script and PXELINUX templates.
type origStack struct {
	bl     *benchLab
	conf   string // the lab's ceph.conf
	dir    string // TFTP root and the daemons' files
	tgtd   *tgtd
	dns    *exec.Cmd
	bridge string
}

func (o *origStack) ns(args ...string) ([]byte, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", o.bl.l.Namespace}, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// up makes the VLAN's bridge with the stack's addresses, the TFTP root
// and the golden image (imported, snapshotted and protected as the
// original's import did), and starts tgtd.
func (o *origStack) up(ctx context.Context, img string) error {
	o.bridge = netns.BridgeName(origVLAN)
	if _, err := o.ns("ip", "link", "show", o.bridge); err != nil {
		if _, err := o.ns("ip", "link", "add", o.bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"); err != nil {
			return err
		}
	}
	for _, c := range [][]string{
		{"ip", "addr", "replace", origAddr4.String(), "dev", o.bridge},
		{"ip", "addr", "replace", origAddr6.String(), "dev", o.bridge, "nodad"},
		{"ip", "link", "set", o.bridge, "up"},
	} {
		if _, err := o.ns(c...); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(o.dir, "pxelinux.cfg"), 0o755); err != nil {
		return err
	}
	for src, dst := range map[string]string{
		"/usr/lib/PXELINUX/pxelinux.0":                "pxelinux.0",
		"/usr/lib/syslinux/modules/bios/ldlinux.c32":  "ldlinux.c32",
		"/usr/lib/syslinux/modules/bios/menu.c32":     "menu.c32",
		"/usr/lib/syslinux/modules/bios/libutil.c32":  "libutil.c32",
		"/usr/lib/syslinux/modules/bios/libcom32.c32": "libcom32.c32",
		"/boot/ipxe.lkrn":                             "ipxe.lkrn",
	} {
		if err := copyFile(src, filepath.Join(o.dir, dst)); err != nil {
			return err
		}
	}
	_ = o.rbd("snap", "unprotect", origGolden+"@"+origSnap)
	_ = o.rbd("snap", "purge", origGolden)
	_ = o.rbd("rm", "--no-progress", origGolden)
	for _, args := range [][]string{
		{"import", "--no-progress", "--image-feature", "layering,exclusive-lock,object-map,fast-diff,deep-flatten", img, origGolden},
		{"snap", "create", origGolden + "@" + origSnap},
		{"snap", "protect", origGolden + "@" + origSnap},
	} {
		if err := o.rbd(args...); err != nil {
			return err
		}
	}
	o.tgtd = &tgtd{bl: o.bl, conf: o.conf, ctl: origCtl, portal: origAddr4.Addr().String() + ":3260", log: filepath.Join(o.dir, "tgtd.log")}
	if err := o.tgtd.run(); err != nil {
		return err
	}
	// ready: the original's tgt-admin adds its targets to a running tgtd
	return o.tgtd.adm("--op", "update", "--mode", "sys", "--name", "State", "-v", "ready")
}

func (o *origStack) rbd(args ...string) error { return o.bl.rbd(o.conf, args...) }

// down stops the daemons and removes the golden image and the bridge.
func (o *origStack) down() {
	o.stopDNS()
	if o.tgtd != nil {
		_ = o.tgtd.stop(false)
	}
	_ = o.rbd("snap", "unprotect", origGolden+"@"+origSnap)
	_ = o.rbd("snap", "purge", origGolden)
	_ = o.rbd("rm", "--no-progress", origGolden)
	_, _ = o.ns("ip", "link", "del", o.bridge)
}

// startDNS runs dnsmasq for chain c with the original's sample
// configuration (interface, range, filename, TFTP, the iPXE user class),
// plus what the lab's iPXE PXE ROM needs of any server to not wait
// (bmid does the same): router advertisements (or iPXE waits about 13 s
// for IPv6) and iPXE's no-ProxyDHCP option (or it waits 2 s).
func (o *origStack) startDNS(ctx context.Context, c origChain, node string) error {
	srv := origAddr4.Addr().String()
	p := origAddr4.Masked().Addr().As4()
	lo, hi := netip.AddrFrom4([4]byte{p[0], p[1], p[2], 50}), netip.AddrFrom4([4]byte{p[0], p[1], p[2], 100})
	args := []string{"dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--user=root", "--group=root",
		"--interface=" + o.bridge, "--bind-interfaces", "--except-interface=lo",
		"--dhcp-range=" + lo.String() + "," + hi.String() + ",7d",
		"--dhcp-leasefile=" + filepath.Join(o.dir, "dnsmasq.leases"), "--log-dhcp", "--log-facility=" + filepath.Join(o.dir, "dnsmasq.log"),
		"--pid-file=" + filepath.Join(o.dir, "dnsmasq.pid"),
		"--enable-tftp", "--tftp-root=" + o.dir,
		"--dhcp-userclass=set:ENH,iPXE",
		"--dhcp-option=tag:ENH,encap:175,176,1b",
		"--enable-ra", "--dhcp-range=" + origAddr6.Masked().Addr().String() + ",ra-only,64",
	}
	if c.pxelinux {
		args = append(args, "--dhcp-boot=pxelinux.0,,"+srv)
	} else {
		args = append(args, "--dhcp-boot=tag:ENH,"+node+".ipxe,,"+srv)
	}
	_ = os.Remove(filepath.Join(o.dir, "dnsmasq.leases"))
	o.dns = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", o.bl.l.Namespace}, args...)...)
	o.dns.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := os.Create(filepath.Join(o.dir, "dnsmasq.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	o.dns.Stdout, o.dns.Stderr = out, out
	return o.dns.Start()
}

func (o *origStack) stopDNS() {
	if o.dns == nil || o.dns.Process == nil {
		return
	}
	_ = o.dns.Process.Signal(syscall.SIGTERM)
	_ = o.dns.Wait()
	o.dns = nil
}

// provision does what the original's provision did after its HIL calls:
// clone the image's snapshot as the node's disk, write the target's
// config from the tgt template and run tgt-admin, write the node's iPXE
// script and PXELINUX file from their templates. The disk is named like
// the original's (<uid>img<id>), and so is the target.
func (o *origStack) provision(node lab.Node, run int) (string, error) {
	disk := fmt.Sprintf("1img%d", 100+run)
	_ = o.rbd("rm", "--no-progress", disk)
	if err := o.rbd("clone", origGolden+"@"+origSnap, disk); err != nil {
		return "", err
	}
	conf := filepath.Join(o.dir, disk+".conf")
	tgt := fmt.Sprintf("<target %s>\n    driver iscsi\n    bs-type rbd\n    backing-store rbd/%s\n    bsopts \"conf=%s;id=admin\"\n"+
		"    write-cache off\n    initiator-address ALL\n</target>\n", disk, disk, o.conf)
	if err := os.WriteFile(conf, []byte(tgt), 0o644); err != nil {
		return "", err
	}
	if out, err := exec.Command("tgt-admin", "-C", origCtl, "-c", conf, "--execute").CombinedOutput(); err != nil {
		return "", fmt.Errorf("tgt-admin --execute: %v: %s", err, out)
	}
	// the original's template names net2, the NIC of its sites; the lab's
	// machines have one NIC, net0
	script := fmt.Sprintf("#!ipxe\n      set keep-san 1\n      ifconf --configurator=dhcp net0\n      sanboot --keep iscsi:%s:tcp:3260:1:%s\n      boot\n",
		origAddr4.Addr(), disk)
	if err := os.WriteFile(filepath.Join(o.dir, node.Name+".ipxe"), []byte(script), 0o755); err != nil {
		return "", err
	}
	menu := fmt.Sprintf("DEFAULT menu\n  PROMPT 0\n  MENU TITLE PXE Menu\n  TIMEOUT 30\n  ONTIMEOUT %s\n\nLABEL %s\n     MENU LABEL %s\n     KERNEL ipxe.lkrn\n     INITRD %s.ipxe\n",
		disk, disk, disk, node.Name)
	mac := "01-" + strings.ReplaceAll(strings.ToLower(node.MAC), ":", "-")
	return disk, os.WriteFile(filepath.Join(o.dir, "pxelinux.cfg", mac), []byte(menu), 0o644)
}

// deprovision removes the target (tgt-admin, forced, as the original
// did) and the clone.
func (o *origStack) deprovision(disk string) error {
	_ = os.Remove(filepath.Join(o.dir, disk+".conf"))
	if out, err := exec.Command("tgt-admin", "-C", origCtl, "-f", "--delete", disk).CombinedOutput(); err != nil {
		return fmt.Errorf("tgt-admin --delete: %v: %s", err, out)
	}
	return o.rbd("rm", "--no-progress", disk)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// benchOrigStack is section 9: the same lab machine boots the same image
// to its marker through bmid and through the original stack, runs
// interleaved (ours, then each original chain) so that drift in the
// machine's load falls on all alike.
func benchOrigStack(b *testing.B, bl *benchLab, runs int) {
	ctx := context.Background()
	for _, c := range []string{"dnsmasq", "tgtd", "tgt-admin"} {
		if _, err := exec.LookPath(c); err != nil {
			b.Skipf("%s is not installed (make deps installs it)", c)
		}
	}
	node, err := bl.l.Node("node-01")
	if err != nil {
		b.Fatal(err)
	}
	img, err := image.Build(ctx, image.Options{CacheDir: imageCache(), Log: bl.logger})
	if err != nil {
		b.Fatal(err)
	}
	ceph, err := bl.l.Ceph()
	if err != nil {
		b.Fatal(err)
	}
	sec, done := section("9-origstack", "9. Netboot: BMI vs the original stack (dnsmasq + tgtd)",
		fmt.Sprintf("The lab's golden image on lab machine node-01 (TCG), power cycle through hil-mock to the marker, %d run(s) each, interleaved: "+
			"(a) BMI: bmid's DHCP, iPXE script over HTTP, sanboot from bmid's iSCSI target (CHAP, initiator ACL); "+
			"(b) and (c) the original BMI's serving stack as its Ansible roles deployed it, on a VLAN of its own in the lab: dnsmasq (DHCP, TFTP), "+
			"tgtd with the rbd backing store (one target per node from the original's tgt template, loaded by tgt-admin, no CHAP), "+
			"the node's disk an RBD clone named <uid>img<id>; (b) through PXELINUX and ipxe.lkrn as the original deployed it, "+
			"(c) with the PXE ROM given the node's iPXE script at once. Same image (imported separately, same bytes), same Ceph.", runs))
	defer done()
	o := &origStack{bl: bl, conf: ceph.ConfPath(), dir: filepath.Join(bl.dir, "origstack")}
	if err := o.up(ctx, img.Path); err != nil {
		o.down()
		b.Fatal(err)
	}
	defer o.down()
	net := bl.l.Net()
	subjects := []string{"(a) BMI"}
	for i := range origChains {
		subjects = append(subjects, fmt.Sprintf("(%c) %s", 'b'+i, origChains[i].name))
	}
	results := make([][]bootResult, len(subjects))
	errs := make([]int, len(subjects))
	con := vm.Console{Path: node.Serial}
	record := func(k int, off int64, r bootResult, err error, run int) {
		// the boot's console (its BMI-LAB-T lines time the initramfs's
		// steps), kept beside the figures
		if tail, terr := con.Tail(con.Offset() - off); terr == nil {
			_ = os.WriteFile(filepath.Join(runDirOrTemp(b), fmt.Sprintf("origstack-%c-run%d.console.log", 'a'+k, run+1)), tail, 0o644)
		}
		if err != nil {
			errs[k]++
			fmt.Printf("%s run %d failed: %v\n", subjects[k], run+1, err)
			sec.Note("%s run %d failed: %s", subjects[k], run+1, errLine(err))
			return
		}
		fmt.Printf("%s run %d: boot %.1f s: %v\n", subjects[k], run+1, r.boot.Seconds(), r.tl)
		results[k] = append(results[k], r)
	}
	powerOff := func() { _, _ = bl.call("POST", bl.hil+"/node/"+node.Name+"/power_off", "", 200) }
	powerOff()
	_ = bl.detach(node.Name) // off the shared network, if a section left it there
	for run := range runs {
		// (a) through bmid, which puts the node on its project's
		// provisioning network at provision and takes it off at
		// deprovision
		off := con.Offset()
		r, err := bl.netboot(ctx, node, lab.GoldenImage, bootTimeout)
		record(0, off, r, err, run)
		powerOff()
		if err := bl.deprovision(node); err != nil {
			b.Fatal(err)
		}
		// (b), (c) through the original stack, the node on its VLAN
		for i, c := range origChains {
			off := con.Offset()
			r, err := o.boot(ctx, net, node, c, run)
			record(1+i, off, r, err, run)
			powerOff()
		}
	}
	// off every network, as bmid's deprovision leaves it
	if err := net.SetVLAN(ctx, node.Tap, 0); err != nil {
		b.Error(err)
	}
	for _, ms := range origMilestones {
		for k, s := range subjects {
			if v := at(results[k], ms.Name); len(v) > 0 {
				r := Durations(ms.Name, s, "s", v)
				if ms.Name == "marker" {
					r.Errors = errs[k]
				}
				sec.Add(r)
			}
		}
	}
	for k, s := range subjects {
		sec.Add(Durations("QEMU CPU time", s, "s", pick(results[k], func(r bootResult) time.Duration { return r.cpu })))
		sec.Add(Durations("provision (before the power cycle)", s, "s", pick(results[k], func(r bootResult) time.Duration { return r.prepare })))
	}
	sec.Chart = &Chart{File: "origstack.svg", YLabel: "seconds from power on (median)"}
	a := sec.Find("marker", subjects[0])
	for k := 1; k < len(subjects); k++ {
		if x := sec.Find("marker", subjects[k]); a != nil && x != nil {
			sec.Ratio(fmt.Sprintf("(a) BMI / (%c) original stack, power on to marker (median)", 'a'+k), a.Median, x.Median)
		}
	}
	for k, s := range subjects {
		sec.Note("%s timeline (median, s from the power cycle): %s", s, medianTimeline(tls(results[k], func(r bootResult) vm.Timeline { return r.tl })))
	}
	sec.Note("the original's iPXE template names net2 (its sites' NIC); the lab's machines have one NIC, so the script says net0; otherwise the templates are the original's, " +
		"PXELINUX's 3 s menu timeout included")
	sec.Note("both stacks answer the lab's iPXE PXE ROM so that it does not wait: router advertisements (iPXE waits about 13 s for IPv6 otherwise) and iPXE's no-ProxyDHCP option; " +
		"the original's sites booted real PXE ROMs, which do not wait for IPv6")
	sec.Note("(b)/(c) provision is the clone by the rbd CLI plus tgt-admin (the original cloned through librbd's Python binding, then ran tgt-admin)")
	sec.Note("each boot's console is kept beside the figures (origstack-<a|b|c>-run<N>.console.log; the BMI-LAB-T lines time the initramfs's steps)")
	if errs[0] == runs {
		b.Fatalf("no BMI boot succeeded")
	}
}

// boot provisions node the original's way, puts it on the original
// stack's VLAN, power-cycles it through hil-mock and watches it to its
// marker; it deprovisions after.
func (o *origStack) boot(ctx context.Context, net *netns.Net, node lab.Node, c origChain, run int) (bootResult, error) {
	t0 := time.Now()
	disk, err := o.provision(node, run)
	if err != nil {
		return bootResult{}, err
	}
	defer func() {
		if err := o.deprovision(disk); err != nil {
			fmt.Printf("original stack: %v\n", err)
		}
	}()
	if err := o.startDNS(ctx, c, node.Name); err != nil {
		return bootResult{}, err
	}
	defer o.stopDNS()
	if err := net.SetVLAN(ctx, node.Tap, origVLAN); err != nil {
		return bootResult{}, err
	}
	// off the stack's VLAN after, as hil-mock left it (bmid's next
	// provision has hil-mock put it on the project's network)
	defer func() { _ = net.SetVLAN(context.Background(), node.Tap, 0) }()
	r := bootResult{prepare: time.Since(t0)}
	r.boot, r.tl, r.mode, err = o.bl.watchFor(ctx, node, origMilestones, func() error {
		_, err := o.bl.call("POST", o.bl.hil+"/node/"+node.Name+"/power_cycle", "", 200)
		return err
	}, &r.cpu, bootTimeout)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(o.dir, "dnsmasq.log"))
		return r, fmt.Errorf("%w\ndnsmasq log tail: %s", err, tail(string(log), 1500))
	}
	return r, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
