//go:build ceph_preview

package daemon

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/events"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/iscsi"
	"github.com/bmi-go/bmi/service/metrics"
	"github.com/bmi-go/bmi/service/opjournal"
)

// newRegistry returns the registry /metrics serves (Go and process
// collectors included) and the plane metrics registered on it with the
// gateway label.
func newRegistry(gateway string) (*prometheus.Registry, *metrics.Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(prometheus.WrapRegistererWith(prometheus.Labels{"gateway": gateway}, reg))
	if err != nil {
		return nil, nil, err
	}
	return reg, m, nil
}

// gatewayLabel is the gateway label of bmid's metrics: metrics.gateway,
// else gateway.id, else the host name.
func gatewayLabel(cfg config.Config) string {
	switch {
	case cfg.Metrics.Gateway != "":
		return cfg.Metrics.Gateway
	case cfg.Gateway.ID != "":
		return cfg.Gateway.ID
	}
	host, _ := os.Hostname()
	return host
}

// watchStateDB exports the state database's connection pool (go_sql_*,
// db_name "state"): waits for a connection, connections closed while
// idle.
func watchStateDB(reg prometheus.Registerer, gateway string, db *sql.DB) error {
	return prometheus.WrapRegistererWith(prometheus.Labels{"gateway": gateway}, reg).
		Register(collectors.NewDBStatsCollector(db, "state"))
}

// bootTargets finds the boot config and target of a MAC (*core.Service).
type bootTargets interface {
	BootTarget(ctx context.Context, mac string) (core.BootConfig, core.Target, error)
}

// bootWatch records every boot step in the timeline, counts it, and
// publishes it as an event of the node's project; it ends a boot at the
// first iSCSI login to the node's disk.
type bootWatch struct {
	timeline interface {
		Record(ctx context.Context, ev boot.Event)
	}
	boots *metrics.Boots
	bus   *events.Bus
	nodes bootTargets

	mu      sync.Mutex
	booting map[string]core.BootConfig // target IQN -> the node booting it
}

// Record implements the Recorder of dhcpd, tftpd and ipxe. Only a node
// with a boot config has a timeline: a machine BMI does not boot gets
// counted, nothing more (a flood of made-up MACs on the provisioning
// network writes nothing to the state store).
func (w *bootWatch) Record(ctx context.Context, ev boot.Event) {
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	w.boots.Step(string(ev.Step))
	bc, t, err := w.nodes.BootTarget(ctx, ev.MAC.String())
	if err != nil {
		return // no boot config (any more): no timeline, no project to tell
	}
	w.timeline.Record(ctx, ev)
	if ev.Step == boot.StepDiscover && w.boots.Started(t.IQN) {
		w.mu.Lock()
		if len(w.booting) < 65536 {
			w.booting[t.IQN] = bc
		}
		w.mu.Unlock()
	}
	w.bus.Publish(api.Event{Type: api.EventBoot, Time: ev.At, Project: bc.Project, Node: bc.Node,
		Step: string(ev.Step), Detail: safeDetail(ev.Detail)})
}

// loggedIn ends the boot of the node whose disk target is.
func (w *bootWatch) loggedIn(target string) {
	d, ok := w.boots.LoggedIn(target)
	w.mu.Lock()
	bc, known := w.booting[target]
	delete(w.booting, target)
	w.mu.Unlock()
	if !ok || !known {
		return
	}
	w.bus.Publish(api.Event{Type: api.EventBoot, Project: bc.Project, Node: bc.Node, Step: api.BootCompleted,
		Detail: "boot took " + d.Round(100*time.Millisecond).String()})
}

// safeDetail keeps a boot step's note free of secrets: a URL's query (the
// one-time script token) is cut off.
func safeDetail(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	return s
}

// loginWatch passes login outcomes on to the guard and ends boots.
type loginWatch struct {
	iscsi.LoginGuard
	boots *bootWatch
}

// Done implements iscsi.LoginGuard.
func (l loginWatch) Done(ev iscsi.LoginEvent) {
	l.LoginGuard.Done(ev)
	if ev.OK && !ev.Discovery && ev.Target != "" {
		l.boots.loggedIn(ev.Target)
	}
}

// watchedJournal is the state database's journal that also counts
// operations and publishes their state changes.
type watchedJournal struct {
	opjournal.Journal
	ops *metrics.Ops
	bus *events.Bus
	// startup is set while start-up recovery runs.
	startup atomic.Bool
}

func opEvent(rec opjournal.Record) api.Event {
	return api.Event{Type: api.EventOperation, Project: rec.Project, Operation: &api.Operation{ID: rec.ID, Kind: rec.Kind,
		Project: rec.Project, Target: rec.Target, Principal: rec.Principal, State: string(rec.State), Error: rec.Error,
		Progress: rec.Progress, Created: rec.Created, Updated: rec.Updated}}
}

// CreateOp implements opjournal.Journal.
func (j *watchedJournal) CreateOp(ctx context.Context, rec opjournal.Record) error {
	if err := j.Journal.CreateOp(ctx, rec); err != nil {
		return err
	}
	j.ops.Started(rec.Kind)
	if stored, err := j.Journal.Op(ctx, rec.ID); err == nil {
		rec = stored
	}
	j.bus.Publish(opEvent(rec))
	return nil
}

// SetOpState implements opjournal.Journal.
func (j *watchedJournal) SetOpState(ctx context.Context, id string, st opjournal.State, msg string) error {
	prev, perr := j.Journal.Op(ctx, id)
	if err := j.Journal.SetOpState(ctx, id, st, msg); err != nil {
		return err
	}
	if perr != nil {
		return nil
	}
	rec := prev
	if now, err := j.Journal.Op(ctx, id); err == nil {
		rec = now
	} else {
		rec.State, rec.Error, rec.Updated = st, msg, time.Now()
	}
	if st != opjournal.Running {
		j.ops.Ended(rec.Kind, string(st), rec.Updated.Sub(rec.Created))
		switch {
		case prev.State == opjournal.Failed:
			j.ops.Recovered("retry", string(st))
		case j.startup.Load() && prev.State == opjournal.Running:
			j.ops.Recovered("startup", string(st))
		}
	}
	j.bus.Publish(opEvent(rec))
	return nil
}

// projectAuth is what the event stream asks HIL (*hilAuth).
type projectAuth interface {
	Authenticate(ctx context.Context, who core.Principal) error
	IsAdmin(ctx context.Context, who core.Principal) (bool, error)
	ProjectAccess(ctx context.Context, who core.Principal, project string) error
}

// projectLister lists BMI's projects (the state database).
type projectLister interface {
	Projects(ctx context.Context) ([]core.Project, error)
}

// eventStream serves the API's event stream from the bus: a caller sees
// the events of the projects it is a member of (re-read every
// accessRefresh), an administrator those of every project.
type eventStream struct {
	bus          *events.Bus
	auth         projectAuth
	projects     projectLister
	adminProject string
}

// accessRefresh is how often a stream re-reads which projects its caller
// may see.
const accessRefresh = time.Minute

func (e eventStream) isAdmin(ctx context.Context, who core.Principal) (bool, error) {
	ok, err := e.auth.IsAdmin(ctx, who)
	if err != nil || ok {
		return ok, err
	}
	return e.adminProject != "" && e.auth.ProjectAccess(ctx, who, e.adminProject) == nil, nil
}

// visible returns the projects who may see (nil: all).
func (e eventStream) visible(ctx context.Context, who core.Principal) (map[string]bool, error) {
	admin, err := e.isAdmin(ctx, who)
	if err != nil || admin {
		return nil, err
	}
	ps, err := e.projects.Projects(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if e.auth.ProjectAccess(ctx, who, p.Name) == nil {
			seen[p.Name] = true
		}
	}
	return seen, nil
}

// Subscribe implements apiserver.Events.
func (e eventStream) Subscribe(ctx context.Context, who core.Principal, f api.EventFilter) (<-chan api.Event, func(), error) {
	if err := e.auth.Authenticate(ctx, who); err != nil {
		return nil, nil, err
	}
	seen, err := e.visible(ctx, who)
	if err != nil {
		return nil, nil, err
	}
	if f.Project != "" && seen != nil && !seen[f.Project] {
		return nil, nil, fault.Errorf(fault.Forbidden, "user %q has no access to project %q", who.User, f.Project)
	}
	var allowed atomic.Pointer[map[string]bool]
	allowed.Store(&seen)
	sub, err := e.bus.Subscribe(func(ev api.Event) bool {
		if !f.Match(ev) {
			return false
		}
		m := *allowed.Load()
		return m == nil || m[ev.Project]
	})
	if err != nil {
		return nil, nil, err
	}
	if seen != nil {
		go func() {
			t := time.NewTicker(accessRefresh)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if m, err := e.visible(ctx, who); err == nil {
						allowed.Store(&m)
					} else if fault.Of(err) == fault.Unauthenticated {
						sub.Close() // the password changed: the stream ends
						return
					}
				}
			}
		}()
	}
	return sub.C, sub.Close, nil
}
