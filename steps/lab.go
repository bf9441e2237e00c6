package steps

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cucumber/godog"
)

// The lab image's console lines (lab/README.md): the state record found
// on the disk, the marker of a finished boot, and failures.
var (
	bootedRE = regexp.MustCompile(`BMI-LAB-BOOTED (\S+) mode=(\S+)\s`)
	stateRE  = regexp.MustCompile(`BMI-LAB-STATE (none|\S+ \d+)\s`)
	failedRE = regexp.MustCompile(`(BMI-LAB-FAILED|BMI-BOOT-FAILED|BMI-NO-BOOT-CONFIG)[^\n]*`)
)

// OpPower is the journal kind of a node the suite powered on: undone by
// powering it off.
const OpPower = "power"

func registerLab(sc *godog.ScenarioContext) {
	sc.Step(`^the site's bootable image, called "([^"]*)"$`, bootableImage)
	sc.Step(`^(node [AB]) boots to its marker$`, func(ctx context.Context, node string) (context.Context, error) {
		b, err := bootToMarker(ctx, node)
		return attachConsole(ctx, node, b), err
	})
	sc.Step(`^(node [AB]) boots and shows (node [AB])'s state record$`, bootsWithRecord)
}

func bootableImage(ctx context.Context, alias string) error {
	w := From(ctx)
	if w.site.BootImage == "" {
		return fmt.Errorf("site %s names no bootable image (boot_image)", w.site.Name)
	}
	w.names.Bind(alias, w.site.BootImage)
	_, err := w.op.Image(ctx, w.site.Project, w.site.BootImage)
	return err
}

// labBoot is what BMI's timeline and the node's console showed during
// one boot.
type labBoot struct {
	Host, Mode, State string
	Console           string // the console output of this boot ("" without consoles)
	Timeline          string // BMI's timeline of this boot, as text
	// Took is the time from power on until the boot was proven.
	Took time.Duration
	// Target is the iSCSI target the booted OS logged into (BMI's
	// timeline).
	Target string
	// Attempts is how many times the node was powered on (bootNode).
	Attempts int
}

// attachConsole puts the boot's timeline and console output into the
// cucumber report.
func attachConsole(ctx context.Context, node string, b labBoot) context.Context {
	name := strings.ReplaceAll(node, " ", "-")
	var atts []godog.Attachment
	if b.Timeline != "" {
		atts = append(atts, godog.Attachment{Body: []byte(b.Timeline), FileName: name + ".timeline.txt", MediaType: "text/plain"})
	}
	if b.Console != "" {
		atts = append(atts, godog.Attachment{Body: []byte(b.Console), FileName: name + ".console.log", MediaType: "text/plain"})
	}
	if len(atts) == 0 {
		return ctx
	}
	return godog.Attach(ctx, atts...)
}

// bootToMarker powers the node on (or cycles it) through HIL and follows
// the boot through BMI's timeline of the node until it shows the whole
// chain (DHCP from the PXE ROM and from iPXE, the script, iPXE's iSCSI
// login, then the booted OS's): that is the proof on any site. Where the
// site's consoles can be read it also follows the serial console to the
// image's marker, which must say the node booted its iSCSI disk from the
// iBFT (mode=ibft).
func bootToMarker(ctx context.Context, nodeAlias string) (labBoot, error) {
	return bootNode(ctx, nodeAlias, 0)
}

// gaveUpRE is iPXE's line when no network boot worked (its DHCP, or the
// script it was told to fetch, failed): the firmware then moves on, and
// the lab's stops there.
var gaveUpRE = regexp.MustCompile(`No more network devices`)

// bootNode is bootToMarker that, on a site with consoles, power-cycles the
// node through HIL up to retries times when its console shows that the
// network boot gave up (as an operator's tooling or a BMC watchdog would
// for firmware that does not retry by itself); labBoot.Attempts counts
// the power-ons.
func bootNode(ctx context.Context, nodeAlias string, retries int) (labBoot, error) {
	w := From(ctx)
	if !w.site.Can(CapBoots) {
		return labBoot{}, fmt.Errorf("site %s lacks capability boots: its nodes cannot be booted", w.site.Name)
	}
	n, err := w.node(nodeAlias)
	if err != nil {
		return labBoot{}, err
	}
	before, err := w.op.NodeTimeline(ctx, w.site.Project, n.Name)
	if err != nil {
		return labBoot{}, fmt.Errorf("boot timeline of %s: %w", n.Name, err)
	}
	baseline := lastAt(before.Events)
	consoles := w.site.Can(CapConsoles)
	var con *consoleWatch
	if consoles {
		if con, err = w.watchConsole(ctx, n); err != nil {
			return labBoot{}, fmt.Errorf("console of %s: %w", n.Name, err)
		}
		defer con.close()
	}
	if err := w.journal(Entry{Op: OpPower, Project: w.site.Project, Name: n.Name}); err != nil {
		return labBoot{}, err
	}
	cred := hilCred(w.site.Operator)
	if err := w.attach(ctx, n); err != nil {
		return labBoot{}, err
	}
	status, err := w.hil.PowerStatus(ctx, cred, n.Name)
	if err != nil {
		return labBoot{}, fmt.Errorf("hil: power status of %s: %w", n.Name, err)
	}
	if strings.EqualFold(status, "off") {
		err = w.hil.PowerOn(ctx, cred, n.Name)
	} else {
		err = w.hil.PowerCycle(ctx, cred, n.Name, true)
	}
	if err != nil {
		return labBoot{}, fmt.Errorf("hil: power on %s: %w", n.Name, err)
	}
	poweredOn := time.Now()
	attempts, attemptFrom := 1, 0 // power-ons; console offset of the current one
	timeout := w.site.BootTimeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	var boot labBoot
	var c chain
	marker := !consoles // no console: the timeline alone proves the boot
	for {
		tl, err := w.op.NodeTimeline(ctx, w.site.Project, n.Name)
		if err != nil {
			return boot, fmt.Errorf("boot timeline of %s: %w", n.Name, err)
		}
		c = bootChain(tl.Events, baseline)
		boot.Timeline = timelineText(n.Name, tl.Events, baseline)
		if c.refused != "" {
			return boot, fmt.Errorf("%s: bmid refused an iSCSI login to its disk: %s", n.Name, c.refused)
		}
		if consoles && !marker {
			text := con.text()
			boot.Console = text
			if m := failedRE.FindString(text); m != "" {
				return boot, fmt.Errorf("%s's console: %s", n.Name, m)
			}
			if attempts <= retries && gaveUpRE.MatchString(text[attemptFrom:]) {
				attempts, attemptFrom = attempts+1, len(text)
				if err := w.hil.PowerCycle(ctx, cred, n.Name, true); err != nil {
					return boot, fmt.Errorf("hil: power cycle %s after its network boot gave up: %w", n.Name, err)
				}
				continue
			}
			if m := bootedRE.FindStringSubmatch(text); m != nil {
				boot.Host, boot.Mode = m[1], m[2]
				if s := stateRE.FindStringSubmatch(text); s != nil {
					boot.State = s[1]
				}
				if boot.Mode != "ibft" {
					return boot, fmt.Errorf("%s booted in mode %s, want ibft (its iSCSI disk)", n.Name, boot.Mode)
				}
				marker = true
			}
		}
		if c.done() && marker {
			boot.Took, boot.Target, boot.Attempts = time.Since(poweredOn), c.osTarget, attempts
			w.mu.Lock()
			w.boots[nodeAlias] = boot
			w.mu.Unlock()
			return boot, nil
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s: not booted within %v: BMI's timeline lacks %s", n.Name, timeout, strings.Join(c.missing(), ", "))
			if len(c.missing()) == 0 {
				msg = fmt.Sprintf("%s: BMI saw the whole boot, but no boot marker on its console within %v", n.Name, timeout)
			}
			if consoles && !marker {
				tail := boot.Console
				if len(tail) > 800 {
					tail = tail[len(tail)-800:]
				}
				msg += "; last console output:\n" + tail
			}
			return boot, fmt.Errorf("%s", msg)
		}
		select {
		case <-ctx.Done():
			return boot, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func bootsWithRecord(ctx context.Context, nodeAlias, firstAlias string) (context.Context, error) {
	w := From(ctx)
	if !w.site.Can(CapConsoles) {
		return ctx, fmt.Errorf("site %s lacks capability consoles: a node's state record is read on its console", w.site.Name)
	}
	w.mu.Lock()
	first, ok := w.boots[firstAlias]
	w.mu.Unlock()
	if !ok {
		return ctx, fmt.Errorf("%s did not boot in this scenario", firstAlias)
	}
	boot, err := bootToMarker(ctx, nodeAlias)
	ctx = attachConsole(ctx, nodeAlias, boot)
	if err != nil {
		return ctx, err
	}
	if !strings.HasPrefix(boot.State, first.Host+" ") {
		return ctx, fmt.Errorf("%s found state record %q on its disk, want %s's (host %s)", nodeAlias, boot.State, firstAlias, first.Host)
	}
	return ctx, nil
}

// attach makes sure the node's NIC is on the site's provisioning network:
// BMI attaches it when provisioning if bmid is configured to; when it is
// not, the suite attaches it through HIL as the operator (journaled) and
// says so in the log.
func (w *World) attach(ctx context.Context, n Node) error {
	net := w.site.ProvisioningNetwork
	if net == "" {
		return nil
	}
	cred := hilCred(w.site.Operator)
	hn, err := w.hil.ShowNode(ctx, cred, n.Name)
	if err != nil {
		return fmt.Errorf("hil: node %s: %w", n.Name, err)
	}
	nic, err := hn.NIC(n.NIC)
	if err != nil {
		return err
	}
	if onNetwork(nic.Networks, net) {
		return nil
	}
	if w.cfg.Log != nil {
		fmt.Fprintf(w.cfg.Log, "note: BMI did not attach %s/%s to %s at provision; the suite attaches it through HIL\n", n.Name, n.NIC, net)
	}
	if err := w.journal(Entry{Op: OpNetwork, Name: n.Name, NIC: n.NIC, Network: net}); err != nil {
		return err
	}
	if _, err := w.hil.ConnectNetwork(ctx, cred, n.Name, n.NIC, net, "vlan/native"); err != nil {
		return fmt.Errorf("hil: connect %s/%s to %s: %w", n.Name, n.NIC, net, err)
	}
	return nil
}
