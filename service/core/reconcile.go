package core

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/bmi-go/bmi/service/fault"
)

// Report is what Reconcile found (and, with fix, removed).
type Report struct {
	// Recovered counts unfinished operations finished or rolled back.
	Recovered int `json:"recovered"`
	// OrphanImages are RBD images with this BMI's prefix that no row owns.
	OrphanImages []string `json:"orphan_images"`
	// MissingImages are rows whose RBD image is gone.
	MissingImages []string `json:"missing_images"`
	// StrayTargets are exported IQNs without a disk.
	StrayTargets []string `json:"stray_targets"`
	// Reexported are disks whose target was not exported and now is.
	Reexported []string `json:"reexported"`
	// StrayBootFiles are nodes with legacy boot files but no boot config.
	StrayBootFiles []string `json:"stray_boot_files"`
	// Left lists every finding still there when Reconcile returned, each
	// with why: not asked to fix, cannot be fixed by Reconcile, or the
	// error that stopped its removal.
	Left []string `json:"left"`
	// Fixed says that fixing was asked for and nothing is left.
	Fixed bool `json:"fixed"`
	// Errors lists what could not be checked or fixed.
	Errors []string `json:"errors,omitempty"`
}

// Reconcile (admin) finishes unfinished operations, then compares Ceph, the
// iSCSI target and the boot files with the database; with fix it removes
// orphans and strays. Targets the database has are always re-exported.
// Report.Left lists what is still there afterwards, and why.
func (s *Service) Reconcile(ctx context.Context, who Principal, fix bool) (Report, error) {
	if err := s.admin(ctx, who); err != nil {
		return Report{}, err
	}
	return s.reconcile(ctx, fix)
}

// Start recovers unfinished operations and re-exports every target of the
// database, reexportParallel at a time; bmid calls it once at start-up,
// before its portal listens: running nodes wait for it, so it does nothing
// else. The rest of a reconcile (missing and orphan images, stray targets
// and boot files) is Audit's, which bmid runs once the portal listens.
func (s *Service) Start(ctx context.Context) (Report, error) {
	rep := Report{}
	unfinished, err := s.engine.Unfinished(ctx)
	if err != nil {
		return rep, err
	}
	if err := s.RecoverAll(ctx); err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	rep.Recovered = unfinished
	s.reexport(ctx, &rep)
	return rep, nil
}

// Audit is a reconcile that fixes nothing and asks nobody: bmid runs it
// after Start, once its portal listens and before its API serves, and logs
// what it finds.
func (s *Service) Audit(ctx context.Context) (Report, error) { return s.reconcile(ctx, false) }

// reexportParallel is how many disks Start exports at once: each export
// opens the disk's image in Ceph (and its parent's), a few round trips to
// the OSDs that are worth overlapping when a site has hundreds of disks.
const reexportParallel = 16

// reexport exports every target of the database that the iSCSI target
// does not have, reexportParallel at a time.
func (s *Service) reexport(ctx context.Context, rep *Report) { s.reexportOnly(ctx, rep, nil) }

// reexportOnly is reexport; with only, just the targets it names, even
// those an unfinished operation of another gateway works on (that gateway
// placed them here to export).
func (s *Service) reexportOnly(ctx context.Context, rep *Report, only map[string]bool) {
	var mu sync.Mutex
	note := func(err error) {
		mu.Lock()
		rep.Errors = append(rep.Errors, err.Error())
		mu.Unlock()
	}
	ts, err := s.targets.Targets(ctx)
	if err != nil {
		note(err)
		return
	}
	live, err := s.exporter.Exported(ctx)
	if err != nil {
		note(err)
		return
	}
	exported := map[string]bool{}
	for _, iqn := range live {
		exported[iqn] = true
	}
	sem := make(chan struct{}, reexportParallel)
	var wg sync.WaitGroup
	for _, t := range ts {
		if exported[t.IQN] || only != nil && !only[t.IQN] {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := s.rows.ImageByID(ctx, t.DiskID)
			if err != nil {
				note(fmt.Errorf("re-export target %s: %w", t.IQN, err))
				return
			}
			if only == nil && s.busyElsewhere(ctx, d.OpID) {
				return // another gateway's operation is at it; a take-over re-exports it
			}
			if err := s.exporter.Export(ctx, s.exportSpec(t, d.CephName, d.Size)); err != nil {
				note(fmt.Errorf("re-export disk %s/%s: %w", d.Project, d.Name, err))
				return
			}
			mu.Lock()
			rep.Reexported = append(rep.Reexported, d.Project+"/"+d.Name)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Strings(rep.Reexported)
}

func (s *Service) reconcile(ctx context.Context, fix bool) (Report, error) {
	rep := Report{}
	note := func(err error) {
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	// found records a finding and, with fix, removes it (remove == nil:
	// Reconcile cannot fix it, why says so).
	found := func(list *[]string, item, why string, remove func() error) {
		*list = append(*list, item)
		switch {
		case remove == nil:
			rep.Left = append(rep.Left, item+": "+why)
		case !fix:
			rep.Left = append(rep.Left, item+": not fixed (reconcile --fix removes it)")
		default:
			if err := remove(); err != nil {
				rep.Left = append(rep.Left, fmt.Sprintf("%s: not removed: %v", item, err))
			}
		}
	}
	unfinished, err := s.engine.Unfinished(ctx)
	if err != nil {
		return rep, err
	}
	note(s.RecoverAll(ctx))
	rep.Recovered = unfinished
	// Images that operations still running in this process work on (an
	// export's temporary copy) are not orphans: their journaled data names
	// them.
	var running []string
	if ops, err := s.journal.Ops(ctx, OpRunning, 0); err == nil {
		for _, o := range ops {
			running = append(running, string(o.Data))
		}
	}
	busy := func(name string) bool {
		for _, data := range running {
			if strings.Contains(data, strconv.Quote(name)) {
				return true
			}
		}
		return false
	}

	rows, err := s.rows.Images(ctx, ImageFilter{})
	if err != nil {
		return rep, err
	}
	owned := map[string]bool{}
	for _, im := range rows {
		owned[im.CephName] = true
		if _, err := s.ceph.Size(ctx, im.CephName); errors.Is(err, fault.ErrNotFound) {
			found(&rep.MissingImages, fmt.Sprintf("%s/%s (%s)", im.Project, im.Name, im.CephName),
				"its data is gone; Reconcile keeps the row for an operator to remove (bmi rm or db rm)", nil)
		} else if err != nil {
			note(fmt.Errorf("check image %s/%s: %w", im.Project, im.Name, err))
		}
	}
	for _, prefix := range []string{CephPrefix(s.cfg.UID), s.tmpPrefix()} {
		names, err := s.ceph.List(ctx, prefix)
		if err != nil {
			note(err)
			continue
		}
		for _, n := range names {
			if _, isRow := IDFromCephName(s.cfg.UID, n); (isRow || strings.HasPrefix(n, s.tmpPrefix())) && !owned[n] && !busy(n) {
				found(&rep.OrphanImages, n, "", func() error { return s.ensureGone(ctx, n) })
			}
		}
	}
	s.reconcileTargets(ctx, &rep, note, found)
	s.reconcileFiles(ctx, &rep, note, found)
	sort.Strings(rep.OrphanImages)
	rep.Fixed = fix && len(rep.Left) == 0 && len(rep.Errors) == 0
	if len(rep.Errors) > 0 {
		s.log.Warn("reconcile found problems", "errors", len(rep.Errors))
	}
	return rep, nil
}

// finder records a finding of Reconcile and removes it when asked to.
type finder func(list *[]string, item, why string, remove func() error)

func (s *Service) reconcileTargets(ctx context.Context, rep *Report, note func(error), found finder) {
	s.reexport(ctx, rep)
	ts, err := s.targets.Targets(ctx)
	if err != nil {
		note(err)
		return
	}
	live, err := s.exporter.Exported(ctx)
	if err != nil {
		note(err)
		return
	}
	known := map[string]bool{}
	for _, t := range ts {
		known[t.IQN] = true
	}
	for _, iqn := range live {
		if !known[iqn] {
			found(&rep.StrayTargets, iqn, "", func() error { return s.exporter.Unexport(ctx, iqn) })
		}
	}
}

func (s *Service) reconcileFiles(ctx context.Context, rep *Report, note func(error), found finder) {
	if s.files == nil {
		return
	}
	nodes, err := s.files.Nodes(ctx)
	if err != nil {
		note(err)
		return
	}
	for _, n := range nodes {
		if _, err := s.boots.Boot(ctx, n); err == nil {
			continue
		} else if !errors.Is(err, fault.ErrNotFound) {
			note(err)
			continue
		}
		found(&rep.StrayBootFiles, n, "", func() error { return s.files.Remove(ctx, n, "") })
	}
}
