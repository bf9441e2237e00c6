package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/hil"
)

// Config is what Register needs: the site, the run's journal, and how
// to name things.
type Config struct {
	Site    *Site
	Journal *Journal
	// Seed, when not zero, makes every scenario's names random (10-15
	// characters, see RandomName), drawn from a generator seeded with
	// Seed and the scenario's position in the run, so a round replays.
	Seed uint64
	// Log receives one line per rollback action (nil: discarded).
	Log io.Writer
}

// World is one scenario's state, carried in its context.
type World struct {
	cfg        Config
	site       *Site
	scenario   string
	names      *Namer
	op         *client.Client // the operator (member of site.Project)
	admin      *client.Client
	other      *client.Client // a member of site.OtherProject only
	hil        *hil.Client
	entries    []Entry // this scenario's journal entries still to undo
	lastErr    error   // the outcome of the last "I try to" step
	tried      bool
	hilIsDown  bool              // a step took HIL down; After brings it back
	cephIsDown bool              // a step took Ceph down; After brings it back
	faultsOn   bool              // a step turned boot faults on; After turns them off
	mu         sync.Mutex        // guards entries and boots while nodes boot at once
	before     []string          // image names of my project before a "try"
	sums       map[string][]byte // sha256 of uploaded images, by alias
	disks      map[string]api.Disk
	scripts    map[string]bootScript // the last boot script seen, by node alias
	cephName   map[string]string     // Ceph names of removed images, by alias
	boots      map[string]labBoot    // what each node's console showed, by alias
	stayUp     map[string]int64      // stay-up nodes: console offset at the last event, by alias
	attack     attackLog             // what the foothold tried (@attacker)
}

type worldKey struct{}

// From returns the scenario's World; steps are only ever called with a
// context that holds one (Register's Before hook puts it there).
func From(ctx context.Context) *World {
	w, _ := ctx.Value(worldKey{}).(*World)
	return w
}

func newWorld(cfg Config, scenario string, n uint64) (*World, error) {
	site := cfg.Site
	w := &World{cfg: cfg, site: site, scenario: scenario, hil: site.HIL(),
		sums: map[string][]byte{}, disks: map[string]api.Disk{}, scripts: map[string]bootScript{}, cephName: map[string]string{}, boots: map[string]labBoot{},
		stayUp: map[string]int64{}}
	var rnd *rand.Rand
	if cfg.Seed != 0 {
		rnd = rand.New(rand.NewPCG(cfg.Seed, n))
	}
	w.names = NewNamer(fmt.Sprintf("%s%d", cfg.Journal.run, n), rnd)
	var err error
	if w.op, err = site.Client(site.Operator); err != nil {
		return nil, err
	}
	if w.admin, err = site.Client(site.Admin); err != nil {
		return nil, err
	}
	if w.other, err = site.Client(site.Other); err != nil {
		return nil, err
	}
	return w, nil
}

// name is the real name of a scenario alias.
func (w *World) name(alias string) string { return w.names.Name(alias) }

// node resolves "node A", "node B" to the site's first and second node.
func (w *World) node(alias string) (Node, error) {
	i := map[string]int{"node A": 0, "node B": 1}[alias]
	if alias != "node A" && alias != "node B" {
		return Node{}, fmt.Errorf("unknown node alias %q (node A or node B)", alias)
	}
	return w.site.Nodes[i], nil
}

// project resolves "my" and "the other".
func (w *World) project(whose string) string {
	if whose == "the other" {
		return w.site.OtherProject
	}
	return w.site.Project
}

// journal records that the scenario is about to create something.
func (w *World) journal(e Entry) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	e.Scenario = w.scenario
	e, err := w.cfg.Journal.Add(e)
	if err != nil {
		return err
	}
	w.entries = append(w.entries, e)
	return nil
}

// forget records that the scenario removed what entry (op, project, name)
// created, so rollback leaves it alone.
func (w *World) forget(op, project, name string) error {
	var errs []error
	w.entries = slices.DeleteFunc(w.entries, func(e Entry) bool {
		if e.Op == op && e.Project == project && e.Name == name {
			errs = append(errs, w.cfg.Journal.Finish(e.Seq))
			return true
		}
		return false
	})
	return errors.Join(errs...)
}

// rollback undoes the scenario's entries LIFO.
func (w *World) rollback(ctx context.Context) error {
	if len(w.entries) == 0 {
		return nil
	}
	if w.cfg.Log != nil {
		for i := len(w.entries) - 1; i >= 0; i-- {
			fmt.Fprintf(w.cfg.Log, "rollback: %s\n", w.entries[i])
		}
	}
	err := Replay(ctx, w.site, w.entries, w.cfg.Journal)
	w.entries = nil
	return err
}
