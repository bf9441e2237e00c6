package hilmock

import (
	"context"
	"database/sql"
	"net/http"
)

func (s *Server) adminRoutes() {
	s.handle("GET /v0/projects", schema{}, s.listProjects)
	s.handle("PUT /v0/project/{project}", schema{}, s.createProject)
	s.handle("DELETE /v0/project/{project}", schema{}, s.deleteProject)
	s.handle("GET /v0/project/{project}/nodes", schema{}, s.listProjectNodes)
	s.handle("POST /v0/project/{project}/connect_node", schema{"node": argString}, s.connectNode)
	s.handle("POST /v0/project/{project}/detach_node", schema{"node": argString}, s.detachNode)
	s.handle("GET /v0/auth/basic/users", schema{}, s.listUsers)
	s.handle("PUT /v0/auth/basic/user/{user}", schema{"password": argString, "is_admin": argOptBool}, s.createUser)
	s.handle("DELETE /v0/auth/basic/user/{user}", schema{}, s.deleteUser)
	s.handle("PATCH /v0/auth/basic/user/{user}", schema{"is_admin": argBool}, s.setAdmin)
	s.handle("POST /v0/auth/basic/user/{user}/add_project", schema{"project": argString}, s.addUserProject)
	s.handle("POST /v0/auth/basic/user/{user}/remove_project", schema{"project": argString}, s.removeUserProject)
}

func (s *Server) listProjects(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	names, err := column(ctx, s.db, "SELECT name FROM projects ORDER BY name")
	return reply{http.StatusOK, names}, err
}

func (s *Server) createProject(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	name := c.path("project")
	if err := checkName("project", name); err != nil {
		return reply{}, err
	}
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error { return insertProject(ctx, tx, name) })
}

func insertProject(ctx context.Context, tx *sql.Tx, name string) error {
	if ok, err := projectExists(ctx, tx, name); err != nil || ok {
		if ok {
			return errorf(TypeDuplicate, "Project %s already exists.", name)
		}
		return err
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO projects (name) VALUES (?)", name)
	return err
}

// deleteProject is DELETE /v0/project/<p> (admin): 409 BlockedError while
// it has nodes, owns networks or can access networks.
func (s *Server) deleteProject(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	p := c.path("project")
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := mustFindProject(ctx, tx, p); err != nil {
			return err
		}
		for _, chk := range []struct{ q, msg string }{
			{"SELECT 1 FROM nodes WHERE project = ?", "Project has nodes still"},
			{"SELECT 1 FROM networks WHERE owner = ?", "Project still has networks"},
			{"SELECT 1 FROM network_access WHERE project = ?", "Project can still access networks"},
		} {
			if ok, err := exists(ctx, tx, chk.q, p); err != nil || ok {
				if ok {
					return errorf(TypeBlocked, "%s", chk.msg)
				}
				return err
			}
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM projects WHERE name = ?", p)
		return err
	})
}

// listProjectNodes is GET /v0/project/<p>/nodes: members and admins. BMI
// uses it as its authorisation probe.
func (s *Server) listProjectNodes(ctx context.Context, c *call) (reply, error) {
	p := c.path("project")
	if err := mustFindProject(ctx, s.db, p); err != nil {
		return reply{}, err
	}
	if err := c.who.requireProjectAccess(p); err != nil {
		return reply{}, err
	}
	names, err := column(ctx, s.db, "SELECT name FROM nodes WHERE project = ? ORDER BY name", p)
	return reply{http.StatusOK, names}, err
}

func (s *Server) connectNode(ctx context.Context, c *call) (reply, error) {
	p := c.path("project")
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := mustFindProject(ctx, tx, p); err != nil {
			return err
		}
		if err := c.who.requireProjectAccess(p); err != nil {
			return err
		}
		n, err := loadNode(ctx, tx, c.str("node"))
		if err != nil {
			return err
		}
		if n.project != "" {
			return errorf(TypeBlocked, "Node is already owned by a project.")
		}
		_, err = tx.ExecContext(ctx, "UPDATE nodes SET project = ? WHERE name = ?", p, n.name)
		return err
	})
}

func (s *Server) detachNode(ctx context.Context, c *call) (reply, error) {
	p := c.path("project")
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := mustFindProject(ctx, tx, p); err != nil {
			return err
		}
		if err := c.who.requireProjectAccess(p); err != nil {
			return err
		}
		n, err := loadNode(ctx, tx, c.str("node"))
		if err != nil {
			return err
		}
		if n.project != p {
			return notFound("Node not in project")
		}
		for _, nic := range n.nics {
			if len(nic.networks) > 0 {
				return errorf(TypeBlocked, "Node attached to a network")
			}
		}
		if ok, err := exists(ctx, tx, "SELECT 1 FROM actions WHERE node = ? AND status = 'PENDING'", n.name); err != nil || ok {
			if ok {
				return errorf(TypeBlocked, "Node has pending network actions")
			}
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE nodes SET project = NULL WHERE name = ?", n.name)
		return err
	})
}

type userJSON struct {
	IsAdmin  bool     `json:"is_admin"`
	Projects []string `json:"projects"`
}

// listUsers is GET /v0/auth/basic/users (admin): {user: {is_admin, projects}}.
func (s *Server) listUsers(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT name, is_admin FROM users ORDER BY name")
	if err != nil {
		return reply{}, err
	}
	out := map[string]*userJSON{}
	var names []string
	for rows.Next() {
		u := &userJSON{}
		var name string
		if err := rows.Scan(&name, &u.IsAdmin); err != nil {
			rows.Close()
			return reply{}, err
		}
		out[name] = u
		names = append(names, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return reply{}, err
	}
	for _, name := range names {
		if out[name].Projects, err = column(ctx, s.db, "SELECT project FROM user_projects WHERE user = ? ORDER BY project", name); err != nil {
			return reply{}, err
		}
	}
	return reply{http.StatusOK, out}, nil
}

func (s *Server) createUser(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	name := c.path("user")
	if err := checkName("user", name); err != nil {
		return reply{}, err
	}
	if ok, err := exists(ctx, s.db, "SELECT 1 FROM users WHERE name = ?", name); err != nil || ok {
		if ok {
			return reply{}, errorf(TypeDuplicate, "User %s already exists.", name)
		}
		return reply{}, err
	}
	hash, err := HashPassword(c.str("password"))
	if err != nil {
		return reply{}, err
	}
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error {
		return insertUser(ctx, tx, name, hash, c.boolean("is_admin"))
	})
}

func insertUser(ctx context.Context, tx *sql.Tx, name, hash string, admin bool) error {
	if ok, err := exists(ctx, tx, "SELECT 1 FROM users WHERE name = ?", name); err != nil || ok {
		if ok {
			return errorf(TypeDuplicate, "User %s already exists.", name)
		}
		return err
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO users (name, password_hash, is_admin) VALUES (?, ?, ?)", name, hash, admin)
	return err
}

func mustFindUser(ctx context.Context, q querier, name string) error {
	ok, err := exists(ctx, q, "SELECT 1 FROM users WHERE name = ?", name)
	if err == nil && !ok {
		err = notFound("User %s does not exist.", name)
	}
	return err
}

func (s *Server) deleteUser(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	u := c.path("user")
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := mustFindUser(ctx, tx, u); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM users WHERE name = ?", u)
		return err
	})
}

func (s *Server) setAdmin(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	u := c.path("user")
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := mustFindUser(ctx, tx, u); err != nil {
			return err
		}
		if u == c.who.name {
			return errorf(TypeIllegalState, "Cannot set own admin status")
		}
		_, err := tx.ExecContext(ctx, "UPDATE users SET is_admin = ? WHERE name = ?", c.boolean("is_admin"), u)
		return err
	})
}

func (s *Server) addUserProject(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	u, p := c.path("user"), c.str("project")
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error { return addMember(ctx, tx, u, p) })
}

func addMember(ctx context.Context, tx *sql.Tx, u, p string) error {
	if err := mustFindUser(ctx, tx, u); err != nil {
		return err
	}
	if err := mustFindProject(ctx, tx, p); err != nil {
		return err
	}
	if ok, err := exists(ctx, tx, "SELECT 1 FROM user_projects WHERE user = ? AND project = ?", u, p); err != nil || ok {
		if ok {
			return errorf(TypeDuplicate, "User %s is already in project %s", u, p)
		}
		return err
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO user_projects (user, project) VALUES (?, ?)", u, p)
	return err
}

func (s *Server) removeUserProject(ctx context.Context, c *call) (reply, error) {
	if err := c.who.requireAdmin(); err != nil {
		return reply{}, err
	}
	u, p := c.path("user"), c.str("project")
	return ok200, inTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := mustFindUser(ctx, tx, u); err != nil {
			return err
		}
		if err := mustFindProject(ctx, tx, p); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM user_projects WHERE user = ? AND project = ?", u, p)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("User %s is not in project %s", u, p)
		}
		return nil
	})
}
