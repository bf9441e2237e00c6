package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/bmi-go/bmi/service/core"
)

const imageCols = `i.id, p.name, i.name, i.kind, COALESCE(i.parent_id, 0), COALESCE(pi.name, ''), i.ceph_name,
	i.size, i.public, i.state, COALESCE(i.op_id, ''), i.created_at, i.updated_at`

const imageFrom = ` FROM images i JOIN projects p ON p.id = i.project_id LEFT JOIN images pi ON pi.id = i.parent_id`

func scanImage(sc interface{ Scan(...any) error }) (core.Image, error) {
	var im core.Image
	var created, updated int64
	var kind, state string
	err := sc.Scan(&im.ID, &im.Project, &im.Name, &kind, &im.ParentID, &im.Parent, &im.CephName,
		&im.Size, &im.Public, &state, &im.OpID, &created, &updated)
	im.Kind, im.State = core.Kind(kind), core.State(state)
	im.Created, im.Updated = fromStamp(created), fromStamp(updated)
	return im, err
}

// InsertImage inserts an image row in im.Project. When im.CephName is empty
// the row's Ceph name is derived from its id: "<uid>img<id>", as the
// original did, so renames and moves never touch Ceph.
func (s *DB) InsertImage(ctx context.Context, im core.Image, uid string) (core.Image, error) {
	what := fmt.Sprintf("image %q in project %q", im.Name, im.Project)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return core.Image{}, dbErr(err, what)
	}
	defer tx.Rollback()
	var pid int64
	if err := tx.QueryRowContext(ctx, `SELECT id FROM projects WHERE name = ?`, im.Project).Scan(&pid); err != nil {
		return core.Image{}, dbErr(err, fmt.Sprintf("project %q", im.Project))
	}
	var parent any
	if im.ParentID != 0 {
		parent = im.ParentID
	}
	now := s.stamp()
	// A unique placeholder keeps ceph_name NOT NULL UNIQUE until the id is
	// known; "/" is in no Ceph image name.
	ceph := im.CephName
	if ceph == "" {
		ceph = fmt.Sprintf("/pending/%d/%s", now, im.Name)
	}
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO images (project_id, name, kind, parent_id, ceph_name, size, public, state, op_id, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULLIF(?, ''), ?, ?) RETURNING id`,
		pid, im.Name, string(im.Kind), parent, ceph, im.Size, im.Public, string(im.State), im.OpID, now, now).Scan(&id)
	if err != nil {
		return core.Image{}, dbErr(err, what)
	}
	if im.CephName == "" {
		ceph = core.CephName(uid, id)
		if _, err := tx.ExecContext(ctx, `UPDATE images SET ceph_name = ? WHERE id = ?`, ceph, id); err != nil {
			return core.Image{}, dbErr(err, fmt.Sprintf("%s: ceph name %q", what, ceph))
		}
	}
	if err := tx.Commit(); err != nil {
		return core.Image{}, dbErr(err, what)
	}
	return s.ImageByID(ctx, id)
}

// Image returns the row named name in project.
func (s *DB) Image(ctx context.Context, project, name string) (core.Image, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+imageCols+imageFrom+` WHERE p.name = ? AND i.name = ?`, project, name)
	im, err := scanImage(row)
	if err != nil {
		return core.Image{}, dbErr(err, fmt.Sprintf("image %q in project %q", name, project))
	}
	return im, nil
}

// ImageByID returns the row with id.
func (s *DB) ImageByID(ctx context.Context, id int64) (core.Image, error) {
	im, err := scanImage(s.db.QueryRowContext(ctx, `SELECT `+imageCols+imageFrom+` WHERE i.id = ?`, id))
	if err != nil {
		return core.Image{}, dbErr(err, fmt.Sprintf("image #%d", id))
	}
	return im, nil
}

// Images lists the rows that match f, by project and name.
func (s *DB) Images(ctx context.Context, f core.ImageFilter) ([]core.Image, error) {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.Project != "" {
		add("p.name = ?", f.Project)
	}
	if f.Name != "" {
		add("i.name = ?", f.Name)
	}
	if f.CephName != "" {
		add("i.ceph_name = ?", f.CephName)
	}
	if f.Kind != "" {
		add("i.kind = ?", string(f.Kind))
	}
	if f.Public != nil {
		add("i.public = ?", *f.Public)
	}
	q := `SELECT ` + imageCols + imageFrom
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return s.queryImages(ctx, q+" ORDER BY p.name, i.name", args...)
}

// Children lists the rows whose parent is id.
func (s *DB) Children(ctx context.Context, id int64) ([]core.Image, error) {
	return s.queryImages(ctx, `SELECT `+imageCols+imageFrom+` WHERE i.parent_id = ? ORDER BY i.id`, id)
}

func (s *DB) queryImages(ctx context.Context, q string, args ...any) ([]core.Image, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, dbErr(err, "images")
	}
	defer rows.Close()
	var out []core.Image
	for rows.Next() {
		im, err := scanImage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	return out, rows.Err()
}

// SetImageState sets a row's state and the operation working on it.
func (s *DB) SetImageState(ctx context.Context, id int64, st core.State, opID string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE images SET state = ?, op_id = NULLIF(?, ''), updated_at = ? WHERE id = ?`,
		string(st), opID, s.stamp(), id)
	return rowsAffected(res, err, fmt.Sprintf("image #%d", id))
}

// SetImageSize records a row's size in bytes.
func (s *DB) SetImageSize(ctx context.Context, id int64, size uint64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE images SET size = ?, updated_at = ? WHERE id = ?`, size, s.stamp(), id)
	return rowsAffected(res, err, fmt.Sprintf("image #%d", id))
}

// MoveImage moves a row to another project and/or renames it; with
// detach it also forgets its parent and becomes a plain image (moving
// across projects does that, as the original did).
func (s *DB) MoveImage(ctx context.Context, id int64, project, name string, detach bool) error {
	what := fmt.Sprintf("image %q in project %q", name, project)
	var pid int64
	if err := s.db.QueryRowContext(ctx, `SELECT id FROM projects WHERE name = ?`, project).Scan(&pid); err != nil {
		return dbErr(err, fmt.Sprintf("project %q", project))
	}
	q := `UPDATE images SET project_id = ?, name = ?, updated_at = ? WHERE id = ?`
	if detach {
		q = `UPDATE images SET project_id = ?, name = ?, updated_at = ?, parent_id = NULL, kind = 'image' WHERE id = ?`
	}
	res, err := s.db.ExecContext(ctx, q, pid, name, s.stamp(), id)
	return rowsAffected(res, err, what)
}

// DeleteImage removes a row; deleting a row that is gone is not an error
// (steps are idempotent), but a row still referenced is a conflict.
func (s *DB) DeleteImage(ctx context.Context, id int64) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM images WHERE id = ?`, id)
	return dbErr(err, fmt.Sprintf("image #%d", id))
}

// CountImages counts a project's rows (for refusing to remove a project
// that still owns something).
func (s *DB) CountImages(ctx context.Context, project string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images i JOIN projects p ON p.id = i.project_id WHERE p.name = ?`, project).Scan(&n)
	if err != nil && err != sql.ErrNoRows {
		return 0, dbErr(err, fmt.Sprintf("project %q", project))
	}
	return n, nil
}
