package steps

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cucumber/godog"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/fault"
)

func registerNodes(sc *godog.ScenarioContext) {
	sc.Step(`^I provision (node [AB]) from (?:image|snapshot) "([^"]*)"$`, provision)
	sc.Step(`^I deprovision (node [AB])$`, deprovision)
	sc.Step(`^I create disk "([^"]*)" from image "([^"]*)"$`, createDisk)
	sc.Step(`^I make (node [AB]) boot disk "([^"]*)"$`, setBoot)
	sc.Step(`^I stop (node [AB]) from netbooting$`, clearBoot)
	sc.Step(`^my project has the disk "([^"]*)", exported as an iSCSI target$`, diskExported)
	sc.Step(`^(node [AB])'s boot script boots (?:disk "([^"]*)"|its disk)$`, scriptBoots)
	sc.Step(`^(node [AB]) logs into its disk over iSCSI with its CHAP secret and sees the size of image "([^"]*)"$`, iscsiLogin)
	sc.Step(`^(node [AB]) no longer netboots: it gets the no-boot-config script$`, noConfig)
	sc.Step(`^I snapshot the disk of (node [AB]) as "([^"]*)"$`, snapshot)
	sc.Step(`^the snapshot "([^"]*)" exists in BMI and in Ceph$`, snapshotExists)
	sc.Step(`^(node [AB])'s disk is a copy-on-write clone of (?:image|snapshot) "([^"]*)"$`, isClone)
	sc.Step(`^(node [AB])'s iSCSI target is gone$`, targetGone)
	sc.Step(`^(node [AB])'s clone is gone from Ceph$`, cloneGone)
}

// mac returns the MAC of the node's boot NIC, as HIL knows it.
func (w *World) mac(ctx context.Context, n Node) (string, error) {
	hn, err := w.hil.ShowNode(ctx, hilCred(w.site.Operator), n.Name)
	if err != nil {
		return "", fmt.Errorf("hil: node %s: %w", n.Name, err)
	}
	nic, err := hn.NIC(n.NIC)
	if err != nil {
		return "", err
	}
	return strings.ToLower(nic.MAC), nil
}

func provision(ctx context.Context, nodeAlias, alias string) error {
	w := From(ctx)
	n, err := w.node(nodeAlias)
	if err != nil {
		return err
	}
	if err := w.journal(Entry{Op: OpProvision, Project: w.site.Project, Name: n.Name, NIC: n.NIC}); err != nil {
		return err
	}
	d, _, err := w.op.Provision(ctx, w.site.Project, n.Name, api.ProvisionRequest{Image: w.name(alias), NIC: n.NIC}, false)
	if err != nil {
		return fmt.Errorf("provision %s from %s: %w", n.Name, w.name(alias), err)
	}
	w.disks[nodeAlias] = d
	return nil
}

func deprovision(ctx context.Context, nodeAlias string) error {
	w := From(ctx)
	n, err := w.node(nodeAlias)
	if err != nil {
		return err
	}
	if err := w.op.Deprovision(ctx, w.site.Project, n.Name, n.NIC); err != nil {
		return fmt.Errorf("deprovision %s: %w", n.Name, err)
	}
	return w.forget(OpProvision, w.site.Project, n.Name)
}

func createDisk(ctx context.Context, alias, image string) error {
	w := From(ctx)
	name := w.name(alias)
	if err := w.journal(Entry{Op: OpDisk, Project: w.site.Project, Name: name}); err != nil {
		return err
	}
	d, _, err := w.op.CreateDisk(ctx, w.site.Project, api.CreateDiskRequest{Image: w.name(image), Name: name}, false)
	if err != nil {
		return fmt.Errorf("create disk %s from %s: %w", name, w.name(image), err)
	}
	w.disks[alias] = d
	return nil
}

func setBoot(ctx context.Context, nodeAlias, disk string) error {
	w := From(ctx)
	n, err := w.node(nodeAlias)
	if err != nil {
		return err
	}
	if err := w.journal(Entry{Op: OpBoot, Project: w.site.Project, Name: n.Name}); err != nil {
		return err
	}
	if _, err := w.op.SetBoot(ctx, w.site.Project, n.Name, api.SetBootRequest{Disk: w.name(disk), NIC: n.NIC}); err != nil {
		return fmt.Errorf("make %s boot %s: %w", n.Name, w.name(disk), err)
	}
	return nil
}

func clearBoot(ctx context.Context, nodeAlias string) error {
	w := From(ctx)
	n, err := w.node(nodeAlias)
	if err != nil {
		return err
	}
	if err := w.op.ClearBoot(ctx, w.site.Project, n.Name); err != nil {
		return fmt.Errorf("stop %s from netbooting: %w", n.Name, err)
	}
	return w.forget(OpBoot, w.site.Project, n.Name)
}

func diskExported(ctx context.Context, alias string) error {
	w := From(ctx)
	d, err := w.op.Disk(ctx, w.site.Project, w.name(alias))
	if err != nil {
		return err
	}
	if d.Target == nil || d.Target.IQN == "" {
		return fmt.Errorf("disk %s has no iSCSI target", d.Name)
	}
	return w.targetListed(ctx, d.Target.IQN, true)
}

// targetListed checks a target against the API's target list.
func (w *World) targetListed(ctx context.Context, iqn string, want bool) error {
	ts, err := w.op.Targets(ctx, w.site.Project)
	if err != nil {
		return err
	}
	inAPI := false
	for _, t := range ts {
		if t.IQN == iqn && t.Exported {
			inAPI = true
		}
	}
	if inAPI != want {
		return fmt.Errorf("target %s: listed as exported by BMI %v, want %v", iqn, inAPI, want)
	}
	return nil
}

// script fetches the node's boot script and remembers it.
func (w *World) script(ctx context.Context, nodeAlias string) (Node, bootScript, error) {
	n, err := w.node(nodeAlias)
	if err != nil {
		return n, bootScript{}, err
	}
	mac, err := w.mac(ctx, n)
	if err != nil {
		return n, bootScript{}, err
	}
	s, err := fetchBootScript(ctx, w.site, w.site.Project, n.Name, mac)
	if err != nil {
		return n, s, err
	}
	if !s.NoConfig {
		w.scripts[nodeAlias] = s
	}
	return n, s, nil
}

func scriptBoots(ctx context.Context, nodeAlias, disk string) error {
	w := From(ctx)
	n, s, err := w.script(ctx, nodeAlias)
	if err != nil {
		return err
	}
	name := ""
	if disk != "" {
		name = w.name(disk)
	} else if d, ok := w.disks[nodeAlias]; ok {
		name = d.Name
	} else {
		return fmt.Errorf("%s was not provisioned in this scenario", n.Name)
	}
	d, err := w.op.Disk(ctx, w.site.Project, name)
	if err != nil {
		return err
	}
	if s.NoConfig || d.Target == nil || s.Target != d.Target.IQN {
		return fmt.Errorf("%s's boot script does not boot disk %s (target %v):\n%s", n.Name, name, d.Target, s.Text)
	}
	return nil
}

func iscsiLogin(ctx context.Context, nodeAlias, image string) error {
	w := From(ctx)
	n, s, err := w.script(ctx, nodeAlias)
	if err != nil {
		return err
	}
	if s.NoConfig {
		return fmt.Errorf("%s has no boot config", n.Name)
	}
	im, err := w.op.Image(ctx, w.site.Project, w.name(image))
	if err != nil {
		return err
	}
	found, err := discover(ctx, w.site, s)
	if err != nil {
		return err
	}
	if !strings.Contains(found, s.Target) {
		return fmt.Errorf("iscsi-ls with %s's credentials does not find its target %s:\n%s", n.Name, s.Target, found)
	}
	size, err := readCapacity(ctx, w.site, s)
	if err != nil {
		return err
	}
	if size != im.Size {
		return fmt.Errorf("%s's disk over iSCSI has %d bytes, image %s %d", n.Name, size, im.Name, im.Size)
	}
	bad := s
	bad.Secret = "not-the-" + s.Secret
	if _, err := readCapacity(ctx, w.site, bad); err == nil {
		return fmt.Errorf("%s's target %s let a wrong CHAP secret in", n.Name, s.Target)
	}
	return nil
}

func noConfig(ctx context.Context, nodeAlias string) error {
	w := From(ctx)
	n, s, err := w.script(ctx, nodeAlias)
	if err != nil {
		return err
	}
	if !s.NoConfig {
		return fmt.Errorf("%s still gets a boot script:\n%s", n.Name, s.Text)
	}
	return nil
}

func snapshot(ctx context.Context, nodeAlias, alias string) error {
	w := From(ctx)
	d, ok := w.disks[nodeAlias]
	if !ok {
		return fmt.Errorf("%s was not provisioned in this scenario", nodeAlias)
	}
	name := w.name(alias)
	if err := w.journal(Entry{Op: OpSnapshot, Project: w.site.Project, Name: name}); err != nil {
		return err
	}
	if _, _, err := w.op.CreateSnapshot(ctx, w.site.Project, api.CreateSnapshotRequest{Disk: d.Name, Name: name}, false); err != nil {
		return fmt.Errorf("snapshot disk %s as %s: %w", d.Name, name, err)
	}
	return nil
}

func snapshotExists(ctx context.Context, alias string) error {
	w := From(ctx)
	snaps, err := w.op.Snapshots(ctx, w.site.Project)
	if err != nil {
		return err
	}
	for _, s := range snaps {
		if s.Name == w.name(alias) {
			return w.imageInCeph(ctx, s)
		}
	}
	return fmt.Errorf("snapshot %s is not listed in project %s", w.name(alias), w.site.Project)
}

func isClone(ctx context.Context, nodeAlias, alias string) error {
	w := From(ctx)
	d, ok := w.disks[nodeAlias]
	if !ok {
		return fmt.Errorf("%s was not provisioned in this scenario", nodeAlias)
	}
	parent, err := w.op.Image(ctx, w.site.Project, w.name(alias))
	if err != nil {
		return err
	}
	info, err := rbdInfo(ctx, w.site, d.CephName)
	if err != nil {
		return err
	}
	if info.Parent == nil || info.Parent.Image != parent.CephName {
		return fmt.Errorf("disk %s (Ceph %s) is not a clone of %s (Ceph %s): parent %+v", d.Name, d.CephName, parent.Name, parent.CephName, info.Parent)
	}
	return nil
}

func targetGone(ctx context.Context, nodeAlias string) error {
	w := From(ctx)
	s, ok := w.scripts[nodeAlias]
	if !ok {
		return fmt.Errorf("%s's boot script was not seen in this scenario", nodeAlias)
	}
	if err := w.targetListed(ctx, s.Target, false); err != nil {
		return err
	}
	found, err := discover(ctx, w.site, s)
	if err != nil {
		return err
	}
	if strings.Contains(found, s.Target) {
		return fmt.Errorf("iscsi-ls with %s's credentials still finds target %s", nodeAlias, s.Target)
	}
	if _, err := readCapacity(ctx, w.site, s); err == nil {
		return fmt.Errorf("target %s still lets %s's initiator in", s.Target, nodeAlias)
	}
	return nil
}

func cloneGone(ctx context.Context, nodeAlias string) error {
	w := From(ctx)
	d, ok := w.disks[nodeAlias]
	if !ok {
		return fmt.Errorf("%s was not provisioned in this scenario", nodeAlias)
	}
	if _, err := w.op.Disk(ctx, w.site.Project, d.Name); !errors.Is(err, fault.ErrNotFound) {
		return fmt.Errorf("disk %s is still shown by BMI (%v)", d.Name, err)
	}
	if ok, err := rbdExists(ctx, w.site, d.CephName); err != nil || ok {
		return fmt.Errorf("clone %s of disk %s is still in the pool (%v)", d.CephName, d.Name, err)
	}
	return nil
}
