//go:build ceph_preview

package daemon

import (
	"context"
	"net"
	"sort"
	"time"

	"github.com/bmi-go/bmi/service/apiserver"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/opjournal"
)

// statusPage gathers the status page's content (apiserver.UI): what the
// caller may see, through the same core calls and authorisation as the API.
type statusPage struct {
	svc      *core.Service
	stream   eventStream // its visible(): the caller's projects
	journal  opjournal.Journal
	timeline apiserver.Timeline
}

// recentOps is how many operations the page lists.
const recentOps = 25

// Authenticate implements apiserver.UI.
func (p statusPage) Authenticate(ctx context.Context, who core.Principal) error {
	return p.stream.auth.Authenticate(ctx, who)
}

// Status implements apiserver.UI.
func (p statusPage) Status(ctx context.Context, who core.Principal) (apiserver.Status, error) {
	if err := p.stream.auth.Authenticate(ctx, who); err != nil {
		return apiserver.Status{}, err
	}
	seen, err := p.stream.visible(ctx, who)
	if err != nil {
		return apiserver.Status{}, err
	}
	st := apiserver.Status{User: who.User, Admin: seen == nil, Generated: time.Now()}
	all, err := p.stream.projects.Projects(ctx)
	if err != nil {
		return st, err
	}
	for _, pr := range all {
		if seen != nil && !seen[pr.Name] {
			continue
		}
		ps := apiserver.ProjectStatus{Name: pr.Name}
		if ps.Images, err = p.svc.ListImages(ctx, who, pr.Name); err != nil {
			return st, err
		}
		if ps.Disks, err = p.svc.ListDisks(ctx, who, pr.Name); err != nil {
			return st, err
		}
		st.Projects = append(st.Projects, ps)
		boots, err := p.svc.ListBoots(ctx, who, pr.Name)
		if err != nil {
			return st, err
		}
		for _, b := range boots {
			n := apiserver.NodeStatus{Project: b.Project, Node: b.Node, NIC: b.NIC, MAC: b.MAC, Disk: b.Disk, State: "waiting for boot"}
			if mac, err := net.ParseMAC(b.MAC); err == nil {
				evs, err := p.timeline.NodeEvents(ctx, mac)
				if err != nil {
					return st, err
				}
				for _, ev := range evs {
					n.Timeline = append(n.Timeline, apiserver.BootStep{Step: string(ev.Step), At: ev.At, Detail: safeDetail(ev.Detail)})
				}
			}
			if len(n.Timeline) > 0 {
				last := n.Timeline[len(n.Timeline)-1]
				n.State, n.Since = last.Step, last.At
			}
			st.Nodes = append(st.Nodes, n)
		}
	}
	sort.Slice(st.Nodes, func(i, j int) bool {
		a, b := st.Nodes[i], st.Nodes[j]
		return a.Project < b.Project || a.Project == b.Project && a.Node < b.Node
	})
	ops, err := p.journal.Ops(ctx, "", 500)
	if err != nil {
		return st, err
	}
	for _, op := range ops {
		if seen != nil && !seen[op.Project] {
			continue
		}
		if len(st.Operations) < recentOps {
			st.Operations = append(st.Operations, op)
		}
		if (op.State == opjournal.Failed || op.State == opjournal.RolledBack) && len(st.Failures) < recentOps {
			st.Failures = append(st.Failures, op)
		}
	}
	return st, nil
}
