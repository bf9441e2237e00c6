package steps

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cucumber/godog"

	"github.com/bmi-go/bmi/service/client"
)

func registerChecks(sc *godog.ScenarioContext) {
	sc.Step(`^BMI, Ceph, iSCSI and HIL agree about my project$`, agree)
}

func dbFilter(project string) client.DBFilter { return client.DBFilter{Project: project} }

// agree makes the original UAT's consistency checks after each step, for
// everything of the site's project: every image, snapshot and disk BMI
// shows is ready and has its Ceph image (disks: a clone); every disk's
// target is exported, listed by the API and found by a real initiator's
// discovery; every node with a boot config is the project's in HIL with
// the MAC BMI boots; and BMI's own reconcile (read-only) finds nothing
// amiss with the scenario's Ceph images.
func agree(ctx context.Context) error {
	w := From(ctx)
	p := w.site.Project
	ims, err := w.admin.DBImages(ctx, dbFilter(p))
	if err != nil {
		return err
	}
	pool, err := rbdList(ctx, w.site)
	if err != nil {
		return err
	}
	var errs []error
	var cephNames []string
	for _, im := range ims {
		cephNames = append(cephNames, im.CephName)
		if im.State != "ready" {
			errs = append(errs, fmt.Errorf("bmi: %s %s is %q", im.Kind, im.Name, im.State))
			continue
		}
		if !slices.Contains(pool, im.CephName) {
			errs = append(errs, fmt.Errorf("ceph: %s %s has no Ceph image %s", im.Kind, im.Name, im.CephName))
		}
	}
	disks, err := w.op.Disks(ctx, p)
	if err != nil {
		return err
	}
	targets, err := w.op.Targets(ctx, p)
	if err != nil {
		return err
	}
	for _, d := range disks {
		info, err := rbdInfo(ctx, w.site, d.CephName)
		if err != nil {
			errs = append(errs, fmt.Errorf("ceph: disk %s: %w", d.Name, err))
		} else if info.Parent == nil {
			errs = append(errs, fmt.Errorf("ceph: disk %s (%s) is not a clone", d.Name, d.CephName))
		}
		if d.Target == nil {
			errs = append(errs, fmt.Errorf("iscsi: disk %s has no target", d.Name))
		}
	}
	for _, t := range targets {
		if !t.Exported {
			errs = append(errs, fmt.Errorf("iscsi: target %s of disk %s is not exported", t.IQN, t.Disk))
		}
	}
	boots, err := w.op.Boots(ctx, p)
	if err != nil {
		return err
	}
	for _, b := range boots {
		hn, err := w.hil.ShowNode(ctx, hilCred(w.site.Operator), b.Node)
		if err != nil {
			errs = append(errs, fmt.Errorf("hil: node %s: %w", b.Node, err))
			continue
		}
		nic, err := hn.NIC(b.NIC)
		switch {
		case hn.Project != p:
			errs = append(errs, fmt.Errorf("hil: node %s belongs to %q, BMI boots it for %s", b.Node, hn.Project, p))
		case err != nil:
			errs = append(errs, fmt.Errorf("hil: %w", err))
		case !strings.EqualFold(nic.MAC, b.MAC):
			errs = append(errs, fmt.Errorf("hil: node %s nic %s has MAC %s, BMI boots %s", b.Node, b.NIC, nic.MAC, b.MAC))
		}
		// the node's view: its script's credentials find and open its target
		s, err := fetchBootScript(ctx, w.site, p, b.Node, strings.ToLower(b.MAC))
		if err != nil {
			errs = append(errs, fmt.Errorf("ipxe: node %s: %w", b.Node, err))
			continue
		}
		if s.NoConfig {
			errs = append(errs, fmt.Errorf("ipxe: node %s has a boot config in BMI but gets the no-boot-config script", b.Node))
			continue
		}
		found, err := discover(ctx, w.site, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("iscsi: node %s: %w", b.Node, err))
		} else if !strings.Contains(found, s.Target) {
			errs = append(errs, fmt.Errorf("iscsi: node %s: iscsi-ls with its credentials does not find target %s", b.Node, s.Target))
		} else if _, err := readCapacity(ctx, w.site, s); err != nil {
			errs = append(errs, fmt.Errorf("iscsi: node %s: %w", b.Node, err))
		}
	}
	rep, err := w.admin.Reconcile(ctx, false)
	if err != nil {
		return err
	}
	for _, list := range [][]string{rep.OrphanImages, rep.MissingImages, rep.StrayTargets, rep.Errors} {
		for _, s := range list {
			for _, c := range cephNames {
				if strings.Contains(s, c) {
					errs = append(errs, fmt.Errorf("reconcile: %s", s))
				}
			}
		}
	}
	return errors.Join(errs...)
}
