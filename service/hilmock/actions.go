package hilmock

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"slices"
)

// Action statuses, as HIL reports them.
const (
	StatusPending = "PENDING"
	StatusDone    = "DONE"
	StatusError   = "ERROR"
)

// newStatusID returns a random UUID (version 4), HIL's status_id.
func newStatusID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// connectNetwork is POST /v0/node/<n>/nic/<nic>/connect_network, with
// HIL's checks in HIL's order (hil/api.py node_connect_network).
func (s *Server) connectNetwork(ctx context.Context, c *call) (reply, error) {
	id := newStatusID()
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		n, err := loadNode(ctx, tx, c.path("node"))
		if err != nil {
			return err
		}
		nic, err := n.nic(c.path("nic"))
		if err != nil {
			return err
		}
		nw, err := loadNetwork(ctx, tx, c.str("network"))
		if err != nil {
			return err
		}
		if n.project == "" {
			return errorf(TypeProjectMismatch, "Node not in project")
		}
		if err := c.who.requireProjectAccess(n.project); err != nil {
			return err
		}
		if busy, err := pendingAction(ctx, tx, n.name, nic.label); err != nil || busy {
			if busy {
				return errorf(TypeBlocked, "A networking operation is already active on the nic.")
			}
			return err
		}
		if len(nw.access) > 0 && !slices.Contains(nw.access, n.project) {
			return errorf(TypeProjectMismatch, "Project does not have access to given network.")
		}
		channel := "vlan/native"
		if c.has("channel") {
			channel = c.str("channel")
		}
		for ch, net := range nic.networks {
			if net == nw.name {
				return errorf(TypeBlocked, "The network is already attached to the nic.")
			}
			if ch == channel {
				return errorf(TypeBlocked, "The channel is already in use on the nic.")
			}
		}
		if !slices.Contains(nw.channels(), channel) {
			return errorf(TypeBadArgument, "Channel %q, is not legal for this network.", channel)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO actions (id, node, nic, op, network, channel, status)
			VALUES (?, ?, ?, 'connect', ?, ?, 'PENDING')`, id, n.name, nic.label, nw.name, channel)
		return err
	})
	if err != nil {
		return reply{}, err
	}
	s.startAction(id)
	return reply{http.StatusAccepted, map[string]string{"status_id": id}}, nil
}

// detachNetwork is POST /v0/node/<n>/nic/<nic>/detach_network.
func (s *Server) detachNetwork(ctx context.Context, c *call) (reply, error) {
	id := newStatusID()
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		n, err := loadNode(ctx, tx, c.path("node"))
		if err != nil {
			return err
		}
		nw, err := loadNetwork(ctx, tx, c.str("network"))
		if err != nil {
			return err
		}
		nic, err := n.nic(c.path("nic"))
		if err != nil {
			return err
		}
		if n.project == "" {
			return errorf(TypeProjectMismatch, "Node not in project")
		}
		if err := c.who.requireProjectAccess(n.project); err != nil {
			return err
		}
		if busy, err := pendingAction(ctx, tx, n.name, nic.label); err != nil || busy {
			if busy {
				return errorf(TypeBlocked, "A networking operation is already active on the nic.")
			}
			return err
		}
		channel := ""
		for ch, net := range nic.networks {
			if net == nw.name {
				channel = ch
			}
		}
		if channel == "" {
			return errorf(TypeBadArgument, "The network is not attached to the nic.")
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO actions (id, node, nic, op, network, channel, status)
			VALUES (?, ?, ?, 'detach', ?, ?, 'PENDING')`, id, n.name, nic.label, nw.name, channel)
		return err
	})
	if err != nil {
		return reply{}, err
	}
	s.startAction(id)
	return reply{http.StatusAccepted, map[string]string{"status_id": id}}, nil
}

// actionJSON is GET /v0/networking_action/<id>'s answer.
type actionJSON struct {
	Status     string  `json:"status"`
	Node       string  `json:"node"`
	NIC        string  `json:"nic"`
	Type       string  `json:"type"`
	Channel    string  `json:"channel"`
	NewNetwork *string `json:"new_network"`
	// Error is hil-mock's addition: why an action is ERROR.
	Error string `json:"error,omitempty"`
}

func (s *Server) showAction(ctx context.Context, c *call) (reply, error) {
	var a actionJSON
	var op, network, project string
	err := s.db.QueryRowContext(ctx, `SELECT a.status, a.node, a.nic, a.op, a.network, a.channel, a.error, COALESCE(n.project, '')
		FROM actions a LEFT JOIN nodes n ON n.name = a.node WHERE a.id = ?`, c.path("status_id")).
		Scan(&a.Status, &a.Node, &a.NIC, &op, &network, &a.Channel, &a.Error, &project)
	if errors.Is(err, sql.ErrNoRows) {
		return reply{}, notFound("status_id not found")
	}
	if err != nil {
		return reply{}, err
	}
	if err := c.who.requireProjectAccess(project); err != nil {
		return reply{}, err
	}
	a.Type = "modify_port"
	if op == "connect" {
		a.NewNetwork = &network
	}
	return reply{http.StatusOK, a}, nil
}

// startAction runs the action in the background unless the server stops.
func (s *Server) startAction(id string) {
	s.actMu.Lock()
	defer s.actMu.Unlock()
	if s.stopping {
		return // stays PENDING; the next Serve resumes it
	}
	s.actWG.Add(1)
	go func() {
		defer s.actWG.Done()
		s.runAction(s.actCtx, id)
	}()
}

// resumeActions restarts the actions a previous run left PENDING.
func (s *Server) resumeActions(ctx context.Context) error {
	ids, err := column(ctx, s.db, "SELECT id FROM actions WHERE status = 'PENDING' ORDER BY seq")
	if err != nil {
		return fmt.Errorf("hil-mock: read pending network actions: %w", err)
	}
	for _, id := range ids {
		s.log.Info("resuming network action", "status_id", id)
		s.startAction(id)
	}
	return nil
}

// runAction applies one action through the switch driver and records the
// outcome. If ctx is cancelled (shutdown) before the driver finishes, the
// action stays PENDING.
func (s *Server) runAction(ctx context.Context, id string) {
	var node, label, op, network, channel string
	var vlan int
	var nic NIC
	err := s.db.QueryRowContext(ctx, `SELECT a.node, a.nic, a.op, a.network, a.channel, w.vlan, c.macaddr, c.port
		FROM actions a JOIN networks w ON w.name = a.network JOIN nics c ON c.node = a.node AND c.label = a.nic
		WHERE a.id = ? AND a.status = 'PENDING'`, id).Scan(&node, &label, &op, &network, &channel, &vlan, &nic.MAC, &nic.Port)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("network action cannot start", "status_id", id, "err", err)
			s.finishAction(id, func(tx *sql.Tx) error { return nil }, fmt.Errorf("cannot start: %w", err))
		}
		return
	}
	nic.Node, nic.Label = node, label
	if op == "connect" {
		err = s.sw.Connect(ctx, nic, vlan, channel)
	} else {
		err = s.sw.Detach(ctx, nic, vlan)
	}
	if err != nil && ctx.Err() != nil {
		s.log.Warn("network action interrupted by shutdown; left pending", "status_id", id)
		return
	}
	s.finishAction(id, func(tx *sql.Tx) error {
		var err error
		if op == "connect" {
			_, err = tx.Exec("INSERT INTO attachments (node, nic, network, channel) VALUES (?, ?, ?, ?)", node, label, network, channel)
		} else {
			_, err = tx.Exec("DELETE FROM attachments WHERE node = ? AND nic = ? AND network = ?", node, label, network)
		}
		return err
	}, err)
	s.log.Info("network action finished", "status_id", id, "op", op, "node", node, "nic", label, "network", network, "vlan", vlan, "err", err)
}

// finishAction marks the action DONE after apply, or ERROR if driverErr is
// set or apply fails.
func (s *Server) finishAction(id string, apply func(*sql.Tx) error, driverErr error) {
	ctx := context.Background()
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		if driverErr != nil {
			_, err := tx.Exec("UPDATE actions SET status = 'ERROR', error = ? WHERE id = ?", driverErr.Error(), id)
			return err
		}
		if err := apply(tx); err != nil {
			return err
		}
		_, err := tx.Exec("UPDATE actions SET status = 'DONE' WHERE id = ?", id)
		return err
	})
	if err != nil && driverErr == nil {
		s.finishAction(id, apply, fmt.Errorf("record the outcome: %w", err))
		return
	}
	if err != nil {
		s.log.Error("network action outcome not recorded", "status_id", id, "err", err)
	}
}
