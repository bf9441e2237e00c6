package hilmock

import (
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"net/http"
)

func (s *Server) routes() {
	s.nodeRoutes()
	s.networkRoutes()
	s.adminRoutes()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, notFound("no API call %s %s", r.Method, r.URL.Path))
	})
}

func (s *Server) nodeRoutes() {
	s.handle("GET /v0/nodes/{is_free}", schema{}, s.listNodes)
	s.handle("GET /v0/node/{node}", schema{}, s.showNode)
	s.handle("PUT /v0/node/{node}", schema{"obm": argOptObject, "obmd": argOptObject, "metadata": argOptObject}, s.registerNode)
	s.handle("DELETE /v0/node/{node}", schema{}, s.deleteNode)
	s.handle("PUT /v0/node/{node}/nic/{nic}", schema{"macaddr": argString, "port": argOptString, "switch": argOptString}, s.registerNIC)
	s.handle("DELETE /v0/node/{node}/nic/{nic}", schema{}, s.deleteNIC)
	s.handle("POST /v0/node/{node}/nic/{nic}/connect_network", schema{"network": argString, "channel": argOptString}, s.connectNetwork)
	s.handle("POST /v0/node/{node}/nic/{nic}/detach_network", schema{"network": argString}, s.detachNetwork)
	s.handle("GET /v0/networking_action/{status_id}", schema{}, s.showAction)
	s.handle("POST /v0/node/{node}/power_cycle", schema{"force": argOptBool}, s.powerCycle)
	s.handle("POST /v0/node/{node}/power_off", schema{}, s.powerOff)
	s.handle("POST /v0/node/{node}/power_on", schema{}, s.powerOn)
	s.handle("GET /v0/node/{node}/power_status", schema{}, s.powerStatus)
	s.handle("PUT /v0/node/{node}/boot_device", schema{"bootdev": argString}, s.setBootDevice)
	s.mux.HandleFunc("GET /v0/node/{node}/console", s.showConsole)
	s.handle("PUT /v0/node/{node}/metadata/{label}", schema{"value": argAny}, s.setMetadata)
	s.handle("DELETE /v0/node/{node}/metadata/{label}", schema{}, s.deleteMetadata)
}

// listNodes is GET /v0/nodes/<all|free>: any authenticated user (HIL v0.3).
func (s *Server) listNodes(ctx context.Context, c *call) (reply, error) {
	q := "SELECT name FROM nodes ORDER BY name"
	if c.path("is_free") == "free" {
		q = "SELECT name FROM nodes WHERE project IS NULL ORDER BY name"
	}
	names, err := column(ctx, s.db, q)
	return reply{http.StatusOK, names}, err
}

// nicJSON is one NIC in show_node's answer; Port and Switch are shown to
// admins only.
type nicJSON struct {
	Label    string            `json:"label"`
	MACAddr  string            `json:"macaddr"`
	Networks map[string]string `json:"networks"`
	Port     *string           `json:"port,omitempty"`
	Switch   *string           `json:"switch,omitempty"`
}

type nodeJSON struct {
	Name     string            `json:"name"`
	Project  *string           `json:"project"`
	NICs     []nicJSON         `json:"nics"`
	Metadata map[string]string `json:"metadata"`
}

func (s *Server) showNode(ctx context.Context, c *call) (reply, error) {
	n, err := loadNode(ctx, s.db, c.path("node"))
	if err != nil {
		return reply{}, err
	}
	if n.project != "" {
		if err := c.who.requireProjectAccess(n.project); err != nil {
			return reply{}, err
		}
	}
	out := nodeJSON{Name: n.name, NICs: []nicJSON{}, Metadata: n.metadata}
	if n.project != "" {
		out.Project = &n.project
	}
	for _, nic := range n.nics {
		j := nicJSON{Label: nic.label, MACAddr: nic.mac, Networks: nic.networks}
		if c.who.admin {
			port, sw := nic.port, nic.sw
			j.Port, j.Switch = &port, &sw
		}
		out.NICs = append(out.NICs, j)
	}
	return reply{http.StatusOK, out}, nil
}

// registerNode is PUT /v0/node/<n> (admin) with HIL v0.3's
// {"obm": {"type", ...}} or HEAD's {"obmd": {"uri", "admin_token"}}, and
// optional metadata. The power address is obm.host, or obmd.uri.
// Metadata cpus, memory_mib and local_disk_gib are the node's hardware.
func (s *Server) registerNode(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	name := c.path("node")
	if err := checkName("node", name); err != nil {
		return reply{}, err
	}
	var addr string
	switch {
	case c.has("obm") && c.has("obmd"):
		return reply{}, errorf(TypeValidation, "Request arguments are not valid for this request")
	case c.has("obm"):
		obm := c.object("obm")
		typ, _ := obm["type"].(string)
		if typ == "" {
			return reply{}, errorf(TypeValidation, "Request arguments are not valid for this request")
		}
		addr, _ = obm["host"].(string)
	case c.has("obmd"):
		addr, _ = c.object("obmd")["uri"].(string)
	default:
		return reply{}, errorf(TypeValidation, "Request arguments are not valid for this request")
	}
	meta := map[string]string{}
	for k, v := range c.object("metadata") {
		b, err := json.Marshal(v)
		if err != nil {
			return reply{}, errorf(TypeBadArgument, "metadata %s: %v", k, err)
		}
		meta[k] = string(b)
	}
	err := inTx(ctx, s.db, func(tx *sql.Tx) error { return insertNode(ctx, tx, name, addr, meta) })
	return ok200, err
}

func insertNode(ctx context.Context, tx *sql.Tx, name, addr string, meta map[string]string) error {
	if ok, err := exists(ctx, tx, "SELECT 1 FROM nodes WHERE name = ?", name); err != nil || ok {
		if ok {
			return errorf(TypeDuplicate, "Node %s already exists.", name)
		}
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO nodes (name, power_address) VALUES (?, ?)", name, addr); err != nil {
		return err
	}
	for k, v := range meta {
		if _, err := tx.ExecContext(ctx, "INSERT INTO node_metadata (node, label, value) VALUES (?, ?, ?)", name, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) deleteNode(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		n, err := loadNode(ctx, tx, c.path("node"))
		if err != nil {
			return err
		}
		if n.project != "" {
			return errorf(TypeBlocked, "Node %s is part of project %s; remove from project before deleting", n.name, n.project)
		}
		if len(n.nics) > 0 {
			return errorf(TypeBlocked, "Node %s has nics; remove them before deleting %s.", n.name, n.name)
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM nodes WHERE name = ?", n.name)
		return err
	})
	return ok200, err
}

// registerNIC is PUT /v0/node/<n>/nic/<nic> {"macaddr"} (admin). hil-mock
// also takes "port" and "switch" here, in place of HIL's switch and port
// registration calls.
func (s *Server) registerNIC(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	node, label := c.path("node"), c.path("nic")
	if err := checkName("nic", label); err != nil {
		return reply{}, err
	}
	mac := c.str("macaddr")
	if hw, err := net.ParseMAC(mac); err != nil || len(hw) != 6 {
		return reply{}, errorf(TypeBadArgument, "%q is not a MAC address", mac)
	}
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		return insertNIC(ctx, tx, node, label, mac, c.str("port"), c.str("switch"))
	})
	return ok200, err
}

func insertNIC(ctx context.Context, tx *sql.Tx, node, label, mac, port, sw string) error {
	if ok, err := exists(ctx, tx, "SELECT 1 FROM nodes WHERE name = ?", node); err != nil || !ok {
		if err == nil {
			err = notFound("Node %s does not exist.", node)
		}
		return err
	}
	if ok, err := exists(ctx, tx, "SELECT 1 FROM nics WHERE node = ? AND label = ?", node, label); err != nil || ok {
		if ok {
			return errorf(TypeDuplicate, "Nic %s on Node %s already exists", label, node)
		}
		return err
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO nics (node, label, macaddr, port, switch) VALUES (?, ?, ?, ?, ?)", node, label, mac, port, sw)
	return err
}

func (s *Server) deleteNIC(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		n, err := loadNode(ctx, tx, c.path("node"))
		if err != nil {
			return err
		}
		nic, err := n.nic(c.path("nic"))
		if err != nil {
			return err
		}
		if len(nic.networks) > 0 {
			return errorf(TypeBlocked, "Nic %s on Node %s is attached to networks", nic.label, n.name)
		}
		if busy, err := pendingAction(ctx, tx, n.name, nic.label); err != nil || busy {
			if busy {
				return errorf(TypeBlocked, "A networking operation is already active on the nic.")
			}
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM nics WHERE node = ? AND label = ?", n.name, nic.label)
		return err
	})
	return ok200, err
}

// setMetadata is PUT /v0/node/<n>/metadata/<label> {"value": any} (admin):
// sets or replaces the label. Labels cpus, memory_mib and local_disk_gib
// are the node's hardware facts.
func (s *Server) setMetadata(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	b, err := json.Marshal(c.args["value"])
	if err != nil {
		return reply{}, errorf(TypeBadArgument, "metadata value: %v", err)
	}
	node, label := c.path("node"), c.path("label")
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, "SELECT 1 FROM nodes WHERE name = ?", node); err != nil || !ok {
			if err == nil {
				err = notFound("Node %s does not exist.", node)
			}
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO node_metadata (node, label, value) VALUES (?, ?, ?)
			ON CONFLICT (node, label) DO UPDATE SET value = excluded.value`, node, label, string(b))
		return err
	})
}

// deleteMetadata is DELETE /v0/node/<n>/metadata/<label> (admin).
func (s *Server) deleteMetadata(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	node, label := c.path("node"), c.path("label")
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := loadNode(ctx, tx, node); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM node_metadata WHERE node = ? AND label = ?", node, label)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("Metadata %s on Node %s does not exist.", label, node)
		}
		return nil
	})
}
