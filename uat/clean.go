package uat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/steps"
)

// Clean replays every rollback journal a killed run of site left under
// results, then removes every resource of the site's projects and pool
// whose name carries steps.Prefix (the suite's naming scheme). It reports
// each action on out and returns every failure joined.
func Clean(ctx context.Context, site *steps.Site, results string, out io.Writer) error {
	var errs []error
	journals, _ := filepath.Glob(filepath.Join(results, "*-"+site.Name+"-*", "journal.jsonl"))
	for _, jp := range journals {
		left, err := steps.ReadJournal(jp)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(left) == 0 {
			continue
		}
		fmt.Fprintf(out, "clean: replaying %d entries of %s\n", len(left), jp)
		j, err := steps.OpenJournal(jp, "clean")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, steps.Replay(ctx, site, left, j), j.Close())
	}
	errs = append(errs, sweep(ctx, site, out))
	return errors.Join(errs...)
}

// sweep removes what carries the suite's prefix, most dependent first:
// boot configs and provisioned nodes, disks, snapshots, images, then the
// suite's own RBD images.
func sweep(ctx context.Context, site *steps.Site, out io.Writer) error {
	admin, err := site.Client(site.Admin)
	if err != nil {
		return err
	}
	var errs []error
	note := func(what string, err error) {
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			return
		}
		fmt.Fprintf(out, "clean: removed %s\n", what)
	}
	ours := func(name string) bool { return strings.HasPrefix(name, steps.Prefix) }
	for _, p := range []string{site.Project, site.OtherProject} {
		if p == "" {
			continue
		}
		boots, err := admin.Boots(ctx, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, b := range boots {
			if !ours(b.Disk) {
				continue
			}
			if b.OwnsDisk {
				note(fmt.Sprintf("provisioning of node %s (disk %s/%s)", b.Node, p, b.Disk), admin.Deprovision(ctx, p, b.Node, ""))
			} else {
				note(fmt.Sprintf("boot config of node %s (disk %s/%s)", b.Node, p, b.Disk), admin.ClearBoot(ctx, p, b.Node))
			}
		}
		disks, err := admin.Disks(ctx, p)
		errs = append(errs, err)
		for _, d := range disks {
			if ours(d.Name) {
				note(fmt.Sprintf("disk %s/%s", p, d.Name), admin.DeleteDisk(ctx, p, d.Name))
			}
		}
		snaps, err := admin.Snapshots(ctx, p)
		errs = append(errs, err)
		for _, s := range snaps {
			if ours(s.Name) {
				note(fmt.Sprintf("snapshot %s/%s", p, s.Name), admin.RemoveSnapshot(ctx, p, s.Name))
			}
		}
		ims, err := admin.Images(ctx, p)
		errs = append(errs, err)
		for _, im := range ims {
			if ours(im.Name) {
				note(fmt.Sprintf("image %s/%s", p, im.Name), admin.RemoveImage(ctx, p, im.Name))
			}
		}
	}
	names, err := steps.RBDList(ctx, site)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, n := range names {
		if ours(n) {
			note("rbd image "+n, steps.RBDRemove(ctx, site, n))
		}
	}
	return errors.Join(errs...)
}

// RemoveResults deletes the result directories under results.
func RemoveResults(results string) (int, error) {
	ds, err := filepath.Glob(filepath.Join(results, "*"))
	if err != nil {
		return 0, err
	}
	for _, d := range ds {
		if err := os.RemoveAll(d); err != nil {
			return 0, err
		}
	}
	return len(ds), nil
}
