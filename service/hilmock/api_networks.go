package hilmock

import (
	"context"
	"database/sql"
	"net/http"
	"slices"
	"strconv"
)

func (s *Server) networkRoutes() {
	s.handle("GET /v0/networks", schema{}, s.listNetworks)
	s.handle("GET /v0/network/{network}", schema{}, s.showNetwork)
	s.handle("PUT /v0/network/{network}", schema{"owner": argString, "access": argString, "net_id": argString}, s.createNetwork)
	s.handle("DELETE /v0/network/{network}", schema{}, s.deleteNetwork)
	s.handle("GET /v0/project/{project}/networks", schema{}, s.listProjectNetworks)
	s.handle("PUT /v0/network/{network}/access/{project}", schema{}, s.grantAccess)
	s.handle("DELETE /v0/network/{network}/access/{project}", schema{}, s.revokeAccess)
}

type networkListEntry struct {
	NetworkID string   `json:"network_id"`
	Projects  []string `json:"projects"` // null: public
}

// listNetworks is GET /v0/networks (admin).
func (s *Server) listNetworks(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	names, err := column(ctx, s.db, "SELECT name FROM networks ORDER BY name")
	if err != nil {
		return reply{}, err
	}
	out := map[string]networkListEntry{}
	for _, name := range names {
		nw, err := loadNetwork(ctx, s.db, name)
		if err != nil {
			return reply{}, err
		}
		e := networkListEntry{NetworkID: strconv.Itoa(nw.vlan)}
		if len(nw.access) > 0 {
			e.Projects = nw.access
		}
		out[name] = e
	}
	return reply{http.StatusOK, out}, nil
}

type networkJSON struct {
	Name           string              `json:"name"`
	Owner          string              `json:"owner"`
	Access         []string            `json:"access"` // null: public
	Channels       []string            `json:"channels"`
	ConnectedNodes map[string][]string `json:"connected-nodes"`
}

// showNetwork is GET /v0/network/<net>: public networks to anyone, others
// to members of a project with access (or admins).
func (s *Server) showNetwork(ctx context.Context, c *call) (reply, error) {
	nw, err := loadNetwork(ctx, s.db, c.path("network"))
	if err != nil {
		return reply{}, err
	}
	if len(nw.access) > 0 && !slices.ContainsFunc(nw.access, c.who.hasProjectAccess) {
		return reply{}, unauthorized("You do not have access to this network.")
	}
	out := networkJSON{Name: nw.name, Owner: "admin", Channels: nw.channels(), ConnectedNodes: map[string][]string{}}
	if nw.owner != "" {
		out.Owner = nw.owner
	}
	if len(nw.access) > 0 {
		out.Access = nw.access
	}
	rows, err := s.db.QueryContext(ctx, `SELECT a.node, a.nic, COALESCE(n.project, '') FROM attachments a
		JOIN nodes n ON n.name = a.node WHERE a.network = ? ORDER BY a.node, a.nic`, nw.name)
	if err != nil {
		return reply{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var node, nic, project string
		if err := rows.Scan(&node, &nic, &project); err != nil {
			return reply{}, err
		}
		if c.who.hasProjectAccess(nw.owner) || c.who.hasProjectAccess(project) {
			out.ConnectedNodes[node] = append(out.ConnectedNodes[node], nic)
		}
	}
	if err := rows.Err(); err != nil {
		return reply{}, err
	}
	return reply{http.StatusOK, out}, nil
}

// createNetwork is PUT /v0/network/<net> {"owner", "access", "net_id"}
// with HIL's rules (docs/networks.md): owner "admin" (admins only) with
// access "" (public) or one project and any net_id; or a project owner,
// accessible by itself, with net_id "" (allocated from the VLAN pool).
func (s *Server) createNetwork(ctx context.Context, c *call) (reply, error) {
	name, owner, access, netID := c.path("network"), c.str("owner"), c.str("access"), c.str("net_id")
	if err := checkName("network", name); err != nil {
		return reply{}, err
	}
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, "SELECT 1 FROM networks WHERE name = ?", name); err != nil || ok {
			if ok {
				return errorf(TypeDuplicate, "Network %s already exists.", name)
			}
			return err
		}
		if owner != "admin" {
			if err := mustFindProject(ctx, tx, owner); err != nil {
				return err
			}
			if err := c.who.requireProjectAccess(owner); err != nil {
				return err
			}
			if access != owner {
				return errorf(TypeBadArgument, "Project-owned networks must be accessible by the owner.")
			}
			if netID != "" {
				return errorf(TypeBadArgument, "Project-owned networks must use network ID allocation")
			}
		} else {
			if err := c.who.requireAdmin(); err != nil {
				return err
			}
			if access != "" {
				if err := mustFindProject(ctx, tx, access); err != nil {
					return err
				}
			}
		}
		vlan, allocated, err := s.networkID(ctx, tx, netID)
		if err != nil {
			return err
		}
		var acc []string
		if access != "" {
			acc = []string{access}
		}
		return insertNetwork(ctx, tx, name, owner, vlan, allocated, acc)
	})
	return ok200, err
}

// networkID validates and claims net_id, or allocates a VLAN from the pool
// when it is "".
func (s *Server) networkID(ctx context.Context, tx *sql.Tx, netID string) (int, bool, error) {
	first, last, err := vlanPool(ctx, tx)
	if err != nil {
		return 0, false, err
	}
	if netID == "" {
		used, err := column(ctx, tx, "SELECT vlan FROM networks")
		if err != nil {
			return 0, false, err
		}
		for v := first; v <= last; v++ {
			if !slices.Contains(used, strconv.Itoa(v)) {
				return v, true, nil
			}
		}
		return 0, false, errorf(TypeAllocation, "No more networks")
	}
	v, err := strconv.Atoi(netID)
	if err != nil || v < 1 || v > 4094 {
		return 0, false, errorf(TypeBadArgument, "Invalid net_id")
	}
	if ok, err := exists(ctx, tx, "SELECT 1 FROM networks WHERE vlan = ?", v); err != nil || ok {
		if ok {
			return 0, false, errorf(TypeBadArgument, "Invalid net_id: VLAN %d is already used by another network", v)
		}
		return 0, false, err
	}
	return v, v >= first && v <= last, nil
}

func insertNetwork(ctx context.Context, tx *sql.Tx, name, owner string, vlan int, allocated bool, access []string) error {
	var ownerArg any
	if owner != "admin" && owner != "" {
		ownerArg = owner
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO networks (name, owner, vlan, allocated) VALUES (?, ?, ?, ?)", name, ownerArg, vlan, allocated); err != nil {
		return err
	}
	for _, p := range access {
		if _, err := tx.ExecContext(ctx, "INSERT INTO network_access (network, project) VALUES (?, ?)", name, p); err != nil {
			return err
		}
	}
	return nil
}

// deleteNetwork is DELETE /v0/network/<net>: the owner project or admins;
// 409 BlockedError while NICs are attached or actions pending.
func (s *Server) deleteNetwork(ctx context.Context, c *call) (reply, error) {
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		nw, err := loadNetwork(ctx, tx, c.path("network"))
		if err != nil {
			return err
		}
		if err := c.who.requireProjectAccess(nw.owner); err != nil {
			return err
		}
		if ok, err := exists(ctx, tx, "SELECT 1 FROM attachments WHERE network = ?", nw.name); err != nil || ok {
			if ok {
				return errorf(TypeBlocked, "Network still connected to nodes")
			}
			return err
		}
		if ok, err := exists(ctx, tx, "SELECT 1 FROM actions WHERE network = ? AND status = 'PENDING'", nw.name); err != nil || ok {
			if ok {
				return errorf(TypeBlocked, "There are pending actions on this network")
			}
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM networks WHERE name = ?", nw.name)
		return err
	})
	return ok200, err
}

// listProjectNetworks is GET /v0/project/<p>/networks: the networks the
// project can access (not the public ones), sorted.
func (s *Server) listProjectNetworks(ctx context.Context, c *call) (reply, error) {
	p := c.path("project")
	if err := mustFindProject(ctx, s.db, p); err != nil {
		return reply{}, err
	}
	if err := c.who.requireProjectAccess(p); err != nil {
		return reply{}, err
	}
	names, err := column(ctx, s.db, "SELECT network FROM network_access WHERE project = ? ORDER BY network", p)
	return reply{http.StatusOK, names}, err
}

// grantAccess is PUT /v0/network/<net>/access/<project>: the network's
// owner project or admins; 409 DuplicateError if the project has access.
func (s *Server) grantAccess(ctx context.Context, c *call) (reply, error) {
	p := c.path("project")
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error {
		nw, err := loadNetwork(ctx, tx, c.path("network"))
		if err != nil {
			return err
		}
		if err := mustFindProject(ctx, tx, p); err != nil {
			return err
		}
		if err := c.who.requireProjectAccess(nw.owner); err != nil {
			return err
		}
		if slices.Contains(nw.access, p) {
			return errorf(TypeDuplicate, "Network %s is already in project %s", nw.name, p)
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO network_access (network, project) VALUES (?, ?)", nw.name, p)
		return err
	})
}

// revokeAccess is DELETE /v0/network/<net>/access/<project>: admins, the
// owner project, or the project itself; 404 if it has no access, 409 if it
// owns the network or still has NICs on it.
func (s *Server) revokeAccess(ctx context.Context, c *call) (reply, error) {
	p := c.path("project")
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error {
		nw, err := loadNetwork(ctx, tx, c.path("network"))
		if err != nil {
			return err
		}
		if err := mustFindProject(ctx, tx, p); err != nil {
			return err
		}
		if len(nw.access) > 0 && !c.who.hasProjectAccess(nw.owner) &&
			!(slices.Contains(nw.access, p) && c.who.hasProjectAccess(p)) {
			return unauthorized("You are not authorized to remove the specified project from this network.")
		}
		if !slices.Contains(nw.access, p) {
			return notFound("Network %s is not in project %s", nw.name, p)
		}
		if nw.owner == p {
			return errorf(TypeBlocked, "Project %s is owner of network %s and its access cannot be removed", p, nw.name)
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM attachments a JOIN nodes n ON n.name = a.node
			WHERE a.network = ? AND n.project = ?`, nw.name, p); err != nil || ok {
			if ok {
				return errorf(TypeBlocked, "Project still has node(s) attached to the network")
			}
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM network_access WHERE network = ? AND project = ?", nw.name, p)
		return err
	})
}
