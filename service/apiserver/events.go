package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// Events is the event stream's source (the daemon's event bus behind its
// authorisation).
type Events interface {
	// Subscribe returns the events of f that who may see (the projects
	// who is a member of; every project for an administrator) until ctx
	// ends or stop is called; the channel is closed when the subscription
	// ends. It fails with fault.Forbidden when f names a project who may
	// not see, and fault.Unavailable when too many clients are subscribed.
	Subscribe(ctx context.Context, who core.Principal, f api.EventFilter) (events <-chan api.Event, stop func(), err error)
}

// keepAlive is how often an idle stream gets a comment line, so that
// proxies keep it open and a gone client is noticed.
const keepAlive = 15 * time.Second

// events streams api.Events as Server-Sent Events until the client goes,
// the subscription ends, or the server shuts down.
func (s *Server) events(c *gin.Context) {
	if s.cfg.Events == nil {
		s.fail(c, fault.Errorf(fault.Unavailable, "this server has no event stream"))
		return
	}
	f := api.EventFilter{Project: c.Query("project"), Node: c.Query("node"), Operation: c.Query("operation")}
	if f.Project != "" {
		if err := core.ValidateName("project name", f.Project); err != nil {
			s.fail(c, err)
			return
		}
	}
	if f.Node != "" {
		if err := core.ValidateName("node name", f.Node); err != nil {
			s.fail(c, err)
			return
		}
	}
	ctx, cancel := context.WithCancel(c.Request.Context())
	defer cancel()
	evs, stop, err := s.cfg.Events.Subscribe(ctx, principal(c), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	defer stop()
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The first line tells the client the stream is open (and subscribed:
	// nothing published from here on is missed).
	fmt.Fprint(w, ": bmi event stream\n\n")
	w.Flush()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return // fell behind, or the bus closed: the client reconnects
			}
			b, err := json.Marshal(ev)
			if err != nil {
				s.log.Error("event stream: encode", "err", err)
				return
			}
			if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", strconv.FormatUint(ev.Seq, 10), ev.Type, b); err != nil {
				return
			}
			w.Flush()
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			w.Flush()
		case <-ctx.Done():
			return // the client went away
		case <-s.shutdown:
			return // bmid is stopping: end the stream so that Shutdown does not wait
		}
	}
}
