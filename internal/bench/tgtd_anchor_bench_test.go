//go:build ceph_preview

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/image"
	"github.com/bmi-go/bmi/lab/vm"
)

// The tgtd anchor's target: its own RBD image of the stay-up image, on
// LUN 1 (tgtd keeps LUN 0 for its controller) of a portal beside bmid's.
const (
	anchorIQN   = "iqn.2026-12.org.bmi.bench:tgtd-anchor"
	anchorImage = "bench-tgtd-anchor"
	anchorPort  = 3261
	anchorCtl   = "7"
)

// tgtd is a tgtd in the lab namespace: the anchor's (the stay-up image
// on its own portal), or the original stack's of section 9.
type tgtd struct {
	bl     *benchLab
	conf   string // the lab's ceph.conf
	ctl    string // tgtd's control port (-C)
	portal string // host:port it listens on
	log    string // its log file
	cmd    *exec.Cmd
}

// anchorTGTD is the anchor's tgtd: a portal beside bmid's on the bridge.
func anchorTGTD(bl *benchLab, conf string) *tgtd {
	bridge := strings.Split(bl.l.Bridge4, "/")[0]
	return &tgtd{bl: bl, conf: conf, ctl: anchorCtl, portal: fmt.Sprintf("%s:%d", bridge, anchorPort),
		log: filepath.Join(bl.dir, "tgtd-anchor.log")}
}

func (t *tgtd) adm(args ...string) error {
	out, err := exec.Command("tgtadm", append([]string{"-C", t.ctl, "--lld", "iscsi"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tgtadm %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// run starts the daemon and waits until it answers, offline (as its
// unit's ExecStartPost leaves it before the targets are set).
func (t *tgtd) run() error {
	logf, err := os.OpenFile(t.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	t.cmd = exec.Command("ip", "netns", "exec", t.bl.l.Namespace, "tgtd", "-f", "-C", t.ctl, "--iscsi", "portal="+t.portal)
	t.cmd.Stdout, t.cmd.Stderr = logf, logf
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := t.cmd.Start(); err != nil {
		return err
	}
	var err2 error
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if err2 = t.adm("--op", "update", "--mode", "sys", "--name", "State", "-v", "offline"); err2 == nil {
			return nil
		}
	}
	return fmt.Errorf("tgtd did not start (log %s): %w", t.log, err2)
}

// start runs tgtd and configures the anchor's target as its unit's
// ExecStartPost does (offline, the targets, ready).
func (t *tgtd) start() error {
	if err := t.run(); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"--op", "new", "--mode", "target", "--tid", "1", "-T", anchorIQN},
		{"--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "--bstype", "rbd",
			"--backing-store", "rbd/" + anchorImage, "--bsopts", "conf=" + t.conf + ";id=admin"},
		{"--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL"},
		{"--op", "update", "--mode", "sys", "--name", "State", "-v", "ready"},
	} {
		if err := t.adm(args...); err != nil {
			return err
		}
	}
	return nil
}

// stop stops tgtd as its unit's ExecStop does: offline, every target
// removed by force (the sessions dropped), then the daemon; or, with
// kill, by SIGKILL. It waits for the process to be gone.
func (t *tgtd) stop(kill bool) error {
	if t.cmd == nil || t.cmd.Process == nil {
		return nil
	}
	if kill {
		_ = t.cmd.Process.Kill()
	} else {
		_ = t.adm("--op", "update", "--mode", "sys", "--name", "State", "-v", "offline")
		_ = exec.Command("tgt-admin", "-C", t.ctl, "-f", "--delete", "ALL").Run()
		if err := t.adm("--op", "delete", "--mode", "system"); err != nil {
			_ = t.cmd.Process.Kill()
		}
	}
	done := make(chan error, 1)
	go func() { done <- t.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = t.cmd.Process.Kill()
		<-done
	}
	t.cmd = nil
	return nil
}

// tgtdAnchor boots node from tgtd (iPXE sanboot, no DHCP: a static
// address and script as the kernel's initrd) into the stay-up image and
// restarts tgtd under it: by its unit's stop and start commands, and by
// SIGKILL and start. The node is taken off bmid first and restored to its
// diskless PXE definition after.
func tgtdAnchor(ctx context.Context, bl *benchLab, node lab.Node) ([]Row, error) {
	_, _ = bl.call("POST", bl.hil+"/node/"+node.Name+"/power_off", "", 200)
	_ = bl.deprovision(node)
	ceph, err := bl.l.Ceph()
	if err != nil {
		return nil, err
	}
	img, err := image.Build(ctx, image.Options{CacheDir: imageCache(), Log: bl.logger, StayUp: true, IOCheck: bl.iocheck})
	if err != nil {
		return nil, err
	}
	rbd := func(args ...string) error { return bl.rbd(ceph.ConfPath(), args...) }
	_ = rbd("rm", "--no-progress", anchorImage)
	if err := rbd("import", "--no-progress", "--image-feature", "layering,exclusive-lock,object-map,fast-diff,deep-flatten", img.Path, anchorImage); err != nil {
		return nil, err
	}
	defer func() { _ = rbd("rm", "--no-progress", anchorImage) }()
	t := anchorTGTD(bl, ceph.ConfPath())
	if err := t.start(); err != nil {
		_ = t.stop(true)
		return nil, err
	}
	defer func() { _ = t.stop(false) }()

	bridge := strings.Split(bl.l.Bridge4, "/")[0]
	prefix := bridge[:strings.LastIndexByte(bridge, '.')]
	script := filepath.Join(bl.dir, "tgtd-anchor.ipxe")
	if err := os.WriteFile(script, []byte(fmt.Sprintf("#!ipxe\nifopen net0\nset net0/ip %s.250\nset net0/netmask 255.255.255.0\n"+
		"set hostname %s\nset initiator-iqn iqn.2026-12.org.bmi.bench:%s\nsanboot iscsi:%s::%d:1:%s || goto failed\n:failed\necho BMI-LAB-FAILED sanboot\n",
		prefix, node.Name, node.Name, bridge, anchorPort, anchorIQN)), 0o644); err != nil {
		return nil, err
	}
	m := vm.NewMachines(bl.l.LibvirtSocket, bl.logger)
	defer m.Close()
	spec := vm.Spec{Name: node.Domain, Host: node.Name, MAC: node.MAC, Tap: node.Tap, Serial: node.Serial}
	direct := spec
	direct.Kernel, direct.Initrd = "/boot/ipxe.lkrn", script
	_ = m.Off(ctx, node.Domain)
	if err := m.Define(ctx, direct, vm.BootPXE); err != nil {
		return nil, err
	}
	defer func() {
		_ = m.Off(ctx, node.Domain)
		_ = m.Define(ctx, spec, vm.BootPXE)
	}()
	if err := bl.connect(node.Name); err != nil {
		return nil, err
	}
	defer func() { _ = bl.detach(node.Name) }()
	n := stayUpNode{node: node, con: vm.Console{Path: node.Serial}}
	from := n.con.Offset()
	if err := m.On(ctx, node.Domain); err != nil {
		return nil, err
	}
	if _, err := n.con.WaitFor(ctx, from, vm.StayUpRE, bootTimeout); err != nil {
		return nil, fmt.Errorf("%s from tgtd: %w", node.Name, err)
	}
	if _, err := n.con.WaitIO(ctx, n.con.Offset(), 10, 3*time.Minute); err != nil {
		return nil, err
	}
	var rows []Row
	for _, kill := range []bool{false, true} {
		subject := "tgtd restart by its unit (anchor)"
		if kill {
			subject = "tgtd SIGKILL + start (anchor)"
		}
		o, err := restartUnder(ctx, bl, []stayUpNode{n}, "", func() error {
			if err := t.stop(kill); err != nil {
				return err
			}
			return t.start()
		}, false)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", subject, err)
		}
		r := outcomeRow("1 nodes", subject, o)
		delete(r.Extra, "all sessions back (ms)")
		rows = append(rows, r)
	}
	return rows, nil
}

// rbd runs the rbd CLI in the lab namespace on the lab's cluster (conf).
func (bl *benchLab) rbd(conf string, args ...string) error {
	out, err := exec.Command("ip", append([]string{"netns", "exec", bl.l.Namespace, "rbd", "--conf", conf}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rbd %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}
