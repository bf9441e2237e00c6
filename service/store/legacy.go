package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/bmi-go/bmi/service/core"
)

// LegacyBatch is everything one `bmid migrate-legacy` run brings over
// from an original BMI site; ImportLegacy writes it in one transaction.
type LegacyBatch struct {
	// Source names the original site (its database file) in the records.
	Source string
	// Projects are created by name, in order.
	Projects []LegacyProject
	// Images are inserted in order (a parent before its children), with
	// their Ceph names kept.
	Images []LegacyImage
	// Boots are the boot configs of the original's provisioned nodes.
	Boots []LegacyBoot
	// IQN and CHAPUser name a disk's target from its id here.
	IQN, CHAPUser func(diskID int64) string
	// Secret makes a fresh CHAP secret.
	Secret func() (string, error)
}

// LegacyProject is a project row of the original.
type LegacyProject struct {
	LegacyID int64
	Name     string
}

// LegacyImage is an image row of the original: an image, a snapshot or a
// provisioned clone (a disk, which gets a target record).
type LegacyImage struct {
	LegacyID       int64
	Project        string
	Name           string
	Kind           core.Kind
	ParentLegacyID int64 // 0: none
	CephName       string
	Size           uint64
	Public         bool
}

// LegacyBoot is a node the original's boot files boot from a disk.
type LegacyBoot struct {
	Node, Project, NIC, MAC string
	DiskLegacyID            int64
	OwnsDisk                bool
}

// LegacyImported returns what earlier runs brought over: kind ("project",
// "image") → the original's id → the row's id here.
func (s *DB) LegacyImported(ctx context.Context) (map[string]map[int64]int64, error) {
	out := map[string]map[int64]int64{"project": {}, "image": {}}
	rows, err := s.db.QueryContext(ctx, `SELECT kind, legacy_id, our_id FROM legacy_imports`)
	if err != nil {
		return nil, dbErr(err, "legacy imports")
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var lid, oid int64
		if err := rows.Scan(&kind, &lid, &oid); err != nil {
			return nil, dbErr(err, "legacy imports")
		}
		out[kind][lid] = oid
	}
	return out, dbErr(rows.Err(), "legacy imports")
}

// UnimportedRows counts the project and image rows that no migration
// brought over (what BMI itself made).
func (s *DB) UnimportedRows(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM projects WHERE id NOT IN (SELECT our_id FROM legacy_imports WHERE kind = 'project')) +
		(SELECT COUNT(*) FROM images WHERE id NOT IN (SELECT our_id FROM legacy_imports WHERE kind = 'image'))`).Scan(&n)
	return n, dbErr(err, "state rows")
}

// ImportLegacy writes b in one transaction: either all of it is in the
// state afterwards, with a legacy_imports record per project and image,
// or none of it (an error, a crash).
func (s *DB) ImportLegacy(ctx context.Context, b LegacyBatch) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(err, "legacy import")
	}
	defer tx.Rollback()
	now := s.stamp()
	record := func(kind string, lid, oid int64) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO legacy_imports (kind, legacy_id, our_id, source, created_at) VALUES (?, ?, ?, ?, ?)`,
			kind, lid, oid, b.Source, now)
		return dbErr(err, fmt.Sprintf("legacy %s row %d", kind, lid))
	}
	for _, p := range b.Projects {
		// The original's id is kept, so ids BMI assigns later come after it.
		if _, err := tx.ExecContext(ctx, `INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)`, p.LegacyID, p.Name, now); err != nil {
			return dbErr(err, fmt.Sprintf("project %q (row %d of the original)", p.Name, p.LegacyID))
		}
		if err := record("project", p.LegacyID, p.LegacyID); err != nil {
			return err
		}
	}
	ours := func(lid int64) (int64, error) {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT our_id FROM legacy_imports WHERE kind = 'image' AND legacy_id = ?`, lid).Scan(&id)
		return id, dbErr(err, fmt.Sprintf("image row %d of the original", lid))
	}
	for _, im := range b.Images {
		what := fmt.Sprintf("image %q of project %q (row %d of the original)", im.Name, im.Project, im.LegacyID)
		var parent any
		if im.ParentLegacyID != 0 {
			pid, err := ours(im.ParentLegacyID)
			if err != nil {
				return fmt.Errorf("%s: parent: %w", what, err)
			}
			parent = pid
		}
		// The original's id is kept: its Ceph name "<uid>img<id>" stays
		// the one BMI derives, and the ids BMI assigns later (and so the
		// Ceph names of new images) come after every kept one.
		id := im.LegacyID
		if _, err := tx.ExecContext(ctx, `INSERT INTO images (id, project_id, name, kind, parent_id, ceph_name, size, public, state, created_at, updated_at)
			VALUES (?, (SELECT id FROM projects WHERE name = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, im.Project, im.Name, string(im.Kind), parent, im.CephName, im.Size, im.Public, string(core.StateReady), now, now); err != nil {
			return dbErr(err, what)
		}
		if err := record("image", im.LegacyID, id); err != nil {
			return err
		}
		if im.Kind != core.KindDisk {
			continue
		}
		secret, err := b.Secret()
		if err != nil {
			return err
		}
		sealed, err := s.seal(secret)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO targets (disk_id, iqn, chap_user, chap_secret, initiators, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			id, b.IQN(id), b.CHAPUser(id), sealed, "[]", now); err != nil {
			return dbErr(err, what+": target")
		}
	}
	for _, bc := range b.Boots {
		did, err := ours(bc.DiskLegacyID)
		if err != nil {
			return fmt.Errorf("boot config of node %q: %w", bc.Node, err)
		}
		// The original's pro made the disk and attached the NIC.
		owned := sql.NullInt64{Int64: did, Valid: bc.OwnsDisk}
		if _, err := tx.ExecContext(ctx, `INSERT INTO boot_configs (node, project_id, disk_id, nic, mac, owns_disk, owned_disk_id, attached, updated_at)
			VALUES (?, (SELECT id FROM projects WHERE name = ?), ?, ?, ?, ?, ?, ?, ?)`,
			bc.Node, bc.Project, did, bc.NIC, bc.MAC, bc.OwnsDisk, owned, bc.OwnsDisk, now); err != nil {
			return dbErr(err, fmt.Sprintf("boot config of node %q", bc.Node))
		}
	}
	if s.db.dialect.numbered {
		// PostgreSQL's identity columns do not move past ids given
		// explicitly: move them, or BMI's next row would take a kept id.
		for _, table := range []string{"projects", "images"} {
			if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('`+table+`', 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM `+table+`), false)`); err != nil {
				return dbErr(err, "legacy import: "+table+" ids")
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return dbErr(err, "legacy import")
	}
	return nil
}
