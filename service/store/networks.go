package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
)

// ProjectNetwork returns the provisioning network given to project, or an
// error of kind fault.NotFound.
func (s *DB) ProjectNetwork(ctx context.Context, project string) (string, error) {
	var n string
	err := s.db.QueryRowContext(ctx, `SELECT network FROM project_networks WHERE project = ?`, project).Scan(&n)
	if err != nil {
		return "", dbErr(err, fmt.Sprintf("provisioning network of project %q", project))
	}
	return n, nil
}

// ClaimProjectNetwork returns project's provisioning network, giving it
// the first of candidates no project has if it has none yet. Concurrent
// claims for one project get the same network; when every candidate is
// taken the error is of kind fault.Conflict.
func (s *DB) ClaimProjectNetwork(ctx context.Context, project string, candidates []string) (string, error) {
	if n, err := s.ProjectNetwork(ctx, project); !errors.Is(err, fault.ErrNotFound) {
		return n, err
	}
	for _, c := range candidates {
		_, err := s.db.ExecContext(ctx, `INSERT INTO project_networks (project, network, created_at) VALUES (?, ?, ?)`,
			project, c, s.stamp())
		if err == nil {
			return c, nil
		}
		if err := dbErr(err, "provisioning network "+c); !errors.Is(err, fault.ErrExists) {
			return "", err
		}
		// Taken by another project, or this project claimed one meanwhile.
		if n, err := s.ProjectNetwork(ctx, project); !errors.Is(err, fault.ErrNotFound) {
			return n, err
		}
	}
	return "", fault.Errorf(fault.Conflict, "project %q: all %d provisioning networks of boot.networks belong to other projects; add one",
		project, len(candidates))
}

// ReleaseProjectNetwork takes project's provisioning network back; a
// project without one is fine.
func (s *DB) ReleaseProjectNetwork(ctx context.Context, project string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM project_networks WHERE project = ?`, project)
	return dbErr(err, fmt.Sprintf("provisioning network of project %q", project))
}
