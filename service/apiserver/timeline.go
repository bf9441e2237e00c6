package apiserver

import (
	"context"
	"net"

	"github.com/gin-gonic/gin"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/fault"
)

// Timeline is what the boot services recorded of each node's boots (the
// daemon passes its *boot.Shared, kept in the state store, so any gateway
// serves every node's timeline).
type Timeline interface {
	NodeEvents(ctx context.Context, mac net.HardwareAddr) ([]boot.Event, error)
}

// nodeTimeline serves a node's boot timeline to whoever may read its boot
// config: the node's MAC comes from that boot config, so a project sees
// only its own nodes, and a node without a boot config has no timeline.
func (s *Server) nodeTimeline(c *gin.Context) {
	b, err := s.cfg.Ops.ShowBoot(c.Request.Context(), principal(c), c.Param("project"), c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	mac, err := net.ParseMAC(b.MAC)
	if err != nil {
		s.fail(c, fault.Errorf(fault.Internal, "boot config of node %q: MAC %q: %v", b.Node, b.MAC, err))
		return
	}
	out := api.NodeTimeline{Node: b.Node, Project: b.Project, MAC: b.MAC, Events: []api.TimelineEvent{}}
	if s.cfg.Timeline != nil {
		evs, err := s.cfg.Timeline.NodeEvents(c.Request.Context(), mac)
		if err != nil {
			s.fail(c, err)
			return
		}
		for _, ev := range evs {
			out.Events = append(out.Events, api.TimelineEvent{At: ev.At, Step: string(ev.Step), Client: ev.Client,
				Detail: boot.Redact(ev.Detail), Remote: ev.Remote, Initiator: ev.Initiator, Session: ev.Session})
		}
	}
	reply(s, c, out, nil)
}
