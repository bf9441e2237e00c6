package hil

import (
	"context"
	"net/http"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// Networking action statuses.
const (
	StatusPending = "PENDING"
	StatusDone    = "DONE"
	StatusError   = "ERROR"
)

// Action is GET /v0/networking_action/<id>'s answer.
type Action struct {
	ID      string `json:"-"`
	Status  string `json:"status"`
	Node    string `json:"node"`
	NIC     string `json:"nic"`
	Type    string `json:"type"`
	Channel string `json:"channel"`
	// NewNetwork is the network connected; empty for a detach.
	NewNetwork string `json:"-"`
	// Error says why an ERROR action failed (hil-mock only; HIL leaves it
	// empty).
	Error string `json:"error,omitempty"`
}

// ShowAction is GET /v0/networking_action/<id>.
func (c *Client) ShowAction(ctx context.Context, cred Credentials, id string) (Action, error) {
	var raw struct {
		Action
		NewNetwork *string `json:"new_network"`
	}
	err := c.do(ctx, cred, "show networking action "+quote(id), http.MethodGet, "/networking_action/"+p(id), nil, &raw)
	if err != nil {
		return Action{}, err
	}
	a := raw.Action
	a.ID = id
	if raw.NewNetwork != nil {
		a.NewNetwork = *raw.NewNetwork
	}
	return a, nil
}

// StartConnectNetwork is POST /v0/node/<node>/nic/<nic>/connect_network:
// HIL queues the change and answers 202 with the action's id, without
// waiting. channel "" lets HIL choose (vlan/native).
func (c *Client) StartConnectNetwork(ctx context.Context, cred Credentials, node, nic, network, channel string) (string, error) {
	body := map[string]string{"network": network}
	if channel != "" {
		body["channel"] = channel
	}
	var out struct {
		StatusID string `json:"status_id"`
	}
	op := "connect nic " + quote(nic) + " of node " + quote(node) + " to network " + quote(network)
	err := c.do(ctx, cred, op, http.MethodPost, "/node/"+p(node)+"/nic/"+p(nic)+"/connect_network", body, &out)
	return out.StatusID, err
}

// StartDetachNetwork is POST /v0/node/<node>/nic/<nic>/detach_network,
// without waiting.
func (c *Client) StartDetachNetwork(ctx context.Context, cred Credentials, node, nic, network string) (string, error) {
	var out struct {
		StatusID string `json:"status_id"`
	}
	op := "detach nic " + quote(nic) + " of node " + quote(node) + " from network " + quote(network)
	err := c.do(ctx, cred, op, http.MethodPost, "/node/"+p(node)+"/nic/"+p(nic)+"/detach_network",
		map[string]string{"network": network}, &out)
	return out.StatusID, err
}

// ConnectNetwork connects the NIC to the network and waits until HIL has
// applied it (see WaitAction).
func (c *Client) ConnectNetwork(ctx context.Context, cred Credentials, node, nic, network, channel string) (Action, error) {
	id, err := c.StartConnectNetwork(ctx, cred, node, nic, network, channel)
	if err != nil {
		return Action{}, err
	}
	return c.WaitAction(ctx, cred, id)
}

// DetachNetwork detaches the NIC from the network and waits until HIL has
// applied it (see WaitAction).
func (c *Client) DetachNetwork(ctx context.Context, cred Credentials, node, nic, network string) (Action, error) {
	id, err := c.StartDetachNetwork(ctx, cred, node, nic, network)
	if err != nil {
		return Action{}, err
	}
	return c.WaitAction(ctx, cred, id)
}

// WaitAction polls the networking action until it is DONE (nil error) or
// ERROR (fault.ErrUnavailable: the switch could not apply it; nothing was
// changed), with a doubling back-off. It gives up with
// fault.ErrUnavailable, wrapping context.DeadlineExceeded, when ctx or the
// client's action timeout runs out first; the action may still complete
// later.
func (c *Client) WaitAction(ctx context.Context, cred Credentials, id string) (Action, error) {
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, c.actionTimeout)
	defer cancel()
	delay := c.pollMin
	timer := time.NewTimer(0) // first look at once
	defer timer.Stop()
	var last Action
	for {
		select {
		case <-wctx.Done():
			return last, fault.Errorf(fault.Unavailable,
				"hil: networking action %s (node %q nic %q) still %s after %s: %v",
				id, last.Node, last.NIC, orPending(last.Status), time.Since(start).Round(time.Millisecond), wctx.Err())
		case <-timer.C:
		}
		a, err := c.ShowAction(wctx, cred, id)
		if err != nil {
			if wctx.Err() != nil {
				continue // the wait ran out during the call: reported above
			}
			return last, err
		}
		last = a
		switch a.Status {
		case StatusDone:
			c.log.Debug("hil networking action done", "status_id", id, "took", time.Since(start))
			return a, nil
		case StatusError:
			msg := a.Error
			if msg == "" {
				msg = "HIL could not apply it"
			}
			return a, fault.Errorf(fault.Unavailable, "hil: networking action %s (%s node %q nic %q) failed: %s",
				id, a.Type, a.Node, a.NIC, msg)
		case StatusPending:
		default:
			return a, fault.Errorf(fault.Internal, "hil: networking action %s: unknown status %q", id, a.Status)
		}
		timer.Reset(delay)
		delay = min(2*delay, c.pollMax)
	}
}

func orPending(s string) string {
	if s == "" {
		return StatusPending
	}
	return s
}
