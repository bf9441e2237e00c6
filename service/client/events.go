package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/fault"
)

// ErrStreamEnded is returned by EventStream.Next when bmid ended the
// stream (it is shutting down, or the client fell too far behind): follow
// again, and read the current state through the API.
var ErrStreamEnded = errors.New("the event stream ended")

// EventStream is an open event stream (GET /api/v1/events).
type EventStream struct {
	body io.ReadCloser
	r    *bufio.Reader
}

// Follow opens the event stream with filter f. It returns once bmid has
// subscribed it: every event published from then on that the caller may
// see and f selects is delivered by Next, in order.
func (c *Client) Follow(ctx context.Context, f api.EventFilter) (*EventStream, error) {
	q := url.Values{}
	for k, v := range map[string]string{"project": f.Project, "node": f.Node, "operation": f.Operation} {
		if v != "" {
			q.Set(k, v)
		}
	}
	req, err := c.request(ctx, http.MethodGet, "/events", q, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.send(req)
	if err != nil {
		return nil, err
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		res.Body.Close()
		return nil, fault.Errorf(fault.Internal, "bmid answered the event stream with %q", ct)
	}
	return &EventStream{body: res.Body, r: bufio.NewReaderSize(res.Body, 64<<10)}, nil
}

// Next returns the next event. It blocks until one comes, the stream ends
// (ErrStreamEnded), or the context of Follow ends (its error).
func (s *EventStream) Next() (api.Event, error) {
	var data strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return api.Event{}, ErrStreamEnded
			}
			return api.Event{}, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if data.Len() == 0 {
				continue // a comment's end, or a keep-alive
			}
			var ev api.Event
			if err := json.Unmarshal([]byte(data.String()), &ev); err != nil {
				return api.Event{}, fault.Errorf(fault.Internal, "decoding an event: %v", err)
			}
			return ev, nil
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
		// "id:", "event:" and ":" comments: the data carries all of it.
	}
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }

// FollowEvents calls fn with every event f selects until ctx ends (it
// returns ctx's error), fn returns an error (returned), or bmid ends the
// stream (ErrStreamEnded). For `bmi node timeline --follow`: filter by
// project and node.
func (c *Client) FollowEvents(ctx context.Context, f api.EventFilter, fn func(api.Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.Follow(ctx, f)
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		ev, err := s.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

// waitOpEvents waits for operation id to finish through the event stream.
// ok is false when the stream could not be used (an older bmid, too many
// clients, the stream ended early): the caller polls instead.
func (c *Client) waitOpEvents(ctx context.Context, id string) (op api.Operation, ok bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.Follow(sctx, api.EventFilter{Operation: id})
	if err != nil {
		return api.Operation{}, false, nil
	}
	defer s.Close()
	// Subscribed: an end from here on comes as an event; one before is in
	// the operation's state.
	if op, err = c.Op(ctx, id); err != nil || op.Finished() {
		return op, true, err
	}
	for {
		ev, err := s.Next()
		if err != nil {
			if ctx.Err() != nil {
				return op, true, ctx.Err()
			}
			return op, false, nil
		}
		if ev.Operation != nil && ev.Operation.ID == id {
			e := *ev.Operation
			if e.Finished() {
				return e, true, nil
			}
		}
	}
}

// opError is the error of an operation that did not end done.
func opError(op api.Operation) error {
	return fmt.Errorf("operation %s (%s of %q) %s: %s", op.ID, op.Kind, op.Target, strings.ReplaceAll(op.State, "_", " "), op.Error)
}
