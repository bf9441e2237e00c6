package store

import (
	"context"
	"fmt"

	"github.com/bmi-go/bmi/service/core"
)

// CreateProject inserts a project.
func (s *DB) CreateProject(ctx context.Context, name string) (core.Project, error) {
	now := s.stamp()
	var id int64
	err := s.db.QueryRowContext(ctx, `INSERT INTO projects (name, created_at) VALUES (?, ?) RETURNING id`, name, now).Scan(&id)
	if err != nil {
		return core.Project{}, dbErr(err, fmt.Sprintf("project %q", name))
	}
	return core.Project{ID: id, Name: name, Created: fromStamp(now)}, nil
}

// Project returns the named project.
func (s *DB) Project(ctx context.Context, name string) (core.Project, error) {
	var p core.Project
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT id, name, created_at FROM projects WHERE name = ?`, name).Scan(&p.ID, &p.Name, &created)
	if err != nil {
		return core.Project{}, dbErr(err, fmt.Sprintf("project %q", name))
	}
	p.Created = fromStamp(created)
	return p, nil
}

// Projects lists every project by name.
func (s *DB) Projects(ctx context.Context) ([]core.Project, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, created_at FROM projects ORDER BY name`)
	if err != nil {
		return nil, dbErr(err, "projects")
	}
	defer rows.Close()
	var out []core.Project
	for rows.Next() {
		var p core.Project
		var created int64
		if err := rows.Scan(&p.ID, &p.Name, &created); err != nil {
			return nil, err
		}
		p.Created = fromStamp(created)
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeleteProject removes a project that owns nothing any more (the foreign
// keys refuse otherwise, as a conflict).
func (s *DB) DeleteProject(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM projects WHERE name = ?`, name)
	return rowsAffected(res, err, fmt.Sprintf("project %q", name))
}
