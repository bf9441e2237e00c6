package steps

import (
	"context"
	"fmt"

	"github.com/cucumber/godog"
)

func registerDiskSwitch(sc *godog.ScenarioContext) {
	sc.Step(`^I make (node [AB]) boot disk "([^"]*)" instead of the one it was provisioned with$`, switchProvisioned)
	sc.Step(`^(node [AB]) boots disk "([^"]*)": BMI saw its OS log into that disk, and it finds no state record there$`, bootsOtherDisk)
}

// switchProvisioned makes a provisioned node boot another disk. BMI keeps
// the clone the node was provisioned with as the node's own, and a later
// deprovision deletes it and detaches the NIC. The clone and the NIC's
// networks (as HIL shows them now) are journaled here all the same, so
// that the rollback leaves the site clean even if that deprovision fails
// (each undo takes "already gone" as done).
func switchProvisioned(ctx context.Context, nodeAlias, disk string) error {
	w := From(ctx)
	n, err := w.node(nodeAlias)
	if err != nil {
		return err
	}
	prov, ok := w.disks[nodeAlias]
	if !ok {
		return fmt.Errorf("%s was not provisioned in this scenario", nodeAlias)
	}
	hn, err := w.hil.ShowNode(ctx, hilCred(w.site.Operator), n.Name)
	if err != nil {
		return fmt.Errorf("hil: node %s: %w", n.Name, err)
	}
	nic, err := hn.NIC(n.NIC)
	if err != nil {
		return err
	}
	for _, net := range nic.Networks {
		if err := w.journal(Entry{Op: OpNetwork, Name: n.Name, NIC: n.NIC, Network: net}); err != nil {
			return err
		}
	}
	if err := w.journal(Entry{Op: OpDisk, Project: w.site.Project, Name: prov.Name}); err != nil {
		return err
	}
	return setBoot(ctx, nodeAlias, disk)
}

// bootsOtherDisk boots the node and wants BMI's timeline to show its
// booted OS logging into disk's target (on any site) and, where the
// site has consoles, the image's state line to say the disk holds no
// record: the disk the node booted before holds the record that boot
// wrote, so the node really booted the other one.
func bootsOtherDisk(ctx context.Context, nodeAlias, disk string) (context.Context, error) {
	w := From(ctx)
	d, err := w.op.Disk(ctx, w.site.Project, w.name(disk))
	if err != nil {
		return ctx, fmt.Errorf("disk %s: %w", w.name(disk), err)
	}
	if d.Target == nil {
		return ctx, fmt.Errorf("disk %s is not exported", w.name(disk))
	}
	boot, err := bootToMarker(ctx, nodeAlias)
	ctx = attachConsole(ctx, nodeAlias, boot)
	if err != nil {
		return ctx, err
	}
	if boot.Target != d.Target.IQN {
		return ctx, fmt.Errorf("%s's booted OS logged into %q, want disk %s's target %s", nodeAlias, boot.Target, w.name(disk), d.Target.IQN)
	}
	if w.site.Can(CapConsoles) && boot.State != "none" {
		return ctx, fmt.Errorf("%s booted disk %s and found state record %q on it, want none: it booted a disk booted before", nodeAlias, w.name(disk), boot.State)
	}
	return ctx, nil
}
