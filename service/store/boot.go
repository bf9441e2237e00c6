package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// PutTarget records (or replaces) a disk's iSCSI export.
func (s *DB) PutTarget(ctx context.Context, t core.Target) error {
	inits, err := json.Marshal(nonNil(t.Initiators))
	if err != nil {
		return err
	}
	sealed, err := s.seal(t.CHAPSecret)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO targets (disk_id, iqn, chap_user, chap_secret, initiators, created_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (disk_id) DO UPDATE SET iqn = excluded.iqn, chap_user = excluded.chap_user,
			chap_secret = excluded.chap_secret, initiators = excluded.initiators`,
		t.DiskID, t.IQN, t.CHAPUser, sealed, string(inits), s.stamp())
	return dbErr(err, fmt.Sprintf("target %q", t.IQN))
}

// ChangeInitiators adds and then removes initiator names of a disk's
// target ACL in one transaction (the row locked on PostgreSQL, the single
// writer on SQLite) and changes nothing else of the target, so that
// concurrent changes, through any gateway, and a secret rotation never
// undo each other. It returns the target as changed.
func (s *DB) ChangeInitiators(ctx context.Context, diskID int64, add, remove []string) (core.Target, error) {
	what := fmt.Sprintf("target of disk #%d", diskID)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return core.Target{}, dbErr(err, what)
	}
	defer tx.Rollback()
	q := `SELECT ` + targetCols + ` FROM targets WHERE disk_id = ?`
	if s.db.dialect.name == postgres.name {
		q += ` FOR UPDATE`
	}
	t, err := s.scanTarget(tx.QueryRowContext(ctx, q, diskID))
	if err != nil {
		return core.Target{}, dbErr(err, what)
	}
	t.Initiators = slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(slices.Concat(t.Initiators, add)))),
		func(n string) bool { return slices.Contains(remove, n) })
	inits, err := json.Marshal(nonNil(t.Initiators))
	if err != nil {
		return core.Target{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE targets SET initiators = ? WHERE disk_id = ?`, string(inits), diskID); err != nil {
		return core.Target{}, dbErr(err, what)
	}
	return t, dbErr(tx.Commit(), what)
}

// SetCHAPSecret replaces a disk's target CHAP secret, and nothing else of
// the target (a concurrent ACL change stays).
func (s *DB) SetCHAPSecret(ctx context.Context, diskID int64, secret string) error {
	sealed, err := s.seal(secret)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE targets SET chap_secret = ? WHERE disk_id = ?`, sealed, diskID)
	if err != nil {
		return dbErr(err, fmt.Sprintf("target of disk #%d", diskID))
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("target of disk #%d: %w", diskID, fault.ErrNotFound)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const targetCols = `disk_id, iqn, chap_user, chap_secret, initiators, created_at`

func (s *DB) scanTarget(sc interface{ Scan(...any) error }) (core.Target, error) {
	var t core.Target
	var inits string
	var created int64
	if err := sc.Scan(&t.DiskID, &t.IQN, &t.CHAPUser, &t.CHAPSecret, &inits, &created); err != nil {
		return core.Target{}, err
	}
	t.Created = fromStamp(created)
	if err := json.Unmarshal([]byte(inits), &t.Initiators); err != nil {
		return core.Target{}, fmt.Errorf("target %q: initiators: %w", t.IQN, err)
	}
	secret, err := s.open(t.CHAPSecret)
	if err != nil {
		return core.Target{}, fmt.Errorf("target %q: %w", t.IQN, err)
	}
	t.CHAPSecret = secret
	return t, nil
}

// Target returns a disk's export.
func (s *DB) Target(ctx context.Context, diskID int64) (core.Target, error) {
	t, err := s.scanTarget(s.db.QueryRowContext(ctx, `SELECT `+targetCols+` FROM targets WHERE disk_id = ?`, diskID))
	if err != nil {
		return core.Target{}, dbErr(err, fmt.Sprintf("target of disk #%d", diskID))
	}
	return t, nil
}

// TargetByIQN returns the export named iqn.
func (s *DB) TargetByIQN(ctx context.Context, iqn string) (core.Target, error) {
	t, err := s.scanTarget(s.db.QueryRowContext(ctx, `SELECT `+targetCols+` FROM targets WHERE iqn = ?`, iqn))
	if err != nil {
		return core.Target{}, dbErr(err, fmt.Sprintf("target %q", iqn))
	}
	return t, nil
}

// Targets lists every export.
func (s *DB) Targets(ctx context.Context) ([]core.Target, error) {
	return s.queryTargets(ctx, "targets", `SELECT `+targetCols+` FROM targets ORDER BY iqn`)
}

// ProjectTargets lists the exports of project's disks.
func (s *DB) ProjectTargets(ctx context.Context, project string) ([]core.Target, error) {
	return s.queryTargets(ctx, fmt.Sprintf("targets of project %q", project), `SELECT `+targetCols+` FROM targets
		WHERE disk_id IN (SELECT i.id FROM images i JOIN projects p ON p.id = i.project_id WHERE p.name = ?) ORDER BY iqn`, project)
}

func (s *DB) queryTargets(ctx context.Context, what, q string, args ...any) ([]core.Target, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, dbErr(err, what)
	}
	defer rows.Close()
	var out []core.Target
	for rows.Next() {
		t, err := s.scanTarget(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteTarget forgets a disk's export; a missing one is not an error.
func (s *DB) DeleteTarget(ctx context.Context, diskID int64) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM targets WHERE disk_id = ?`, diskID)
	return dbErr(err, fmt.Sprintf("target of disk #%d", diskID))
}

const bootCols = `b.node, p.name, b.disk_id, i.name, b.nic, b.mac, b.owned_disk_id, b.attached, b.updated_at`
const bootFrom = ` FROM boot_configs b JOIN projects p ON p.id = b.project_id JOIN images i ON i.id = b.disk_id`

func scanBoot(sc interface{ Scan(...any) error }) (core.BootConfig, error) {
	var b core.BootConfig
	var owned sql.NullInt64
	var updated int64
	err := sc.Scan(&b.Node, &b.Project, &b.DiskID, &b.Disk, &b.NIC, &b.MAC, &owned, &b.Attached, &updated)
	b.OwnedDiskID = owned.Int64
	b.OwnsDisk = owned.Valid && owned.Int64 == b.DiskID
	b.Updated = fromStamp(updated)
	return b, err
}

// PutBoot records (or replaces) which disk a node boots. b.OwnsDisk
// without b.OwnedDiskID (a boot config journaled by a bmid before
// owned_disk_id) means the node owns the disk it boots and is attached.
func (s *DB) PutBoot(ctx context.Context, b core.BootConfig) error {
	what := fmt.Sprintf("boot config of node %q", b.Node)
	var pid int64
	if err := s.db.QueryRowContext(ctx, `SELECT id FROM projects WHERE name = ?`, b.Project).Scan(&pid); err != nil {
		return dbErr(err, fmt.Sprintf("project %q", b.Project))
	}
	if b.OwnsDisk && b.OwnedDiskID == 0 {
		b.OwnedDiskID, b.Attached = b.DiskID, true
	}
	owned := sql.NullInt64{Int64: b.OwnedDiskID, Valid: b.OwnedDiskID != 0}
	_, err := s.db.ExecContext(ctx, `INSERT INTO boot_configs (node, project_id, disk_id, nic, mac, owns_disk, owned_disk_id, attached, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (node) DO UPDATE SET project_id = excluded.project_id, disk_id = excluded.disk_id,
			nic = excluded.nic, mac = excluded.mac, owns_disk = excluded.owns_disk, owned_disk_id = excluded.owned_disk_id,
			attached = excluded.attached, updated_at = excluded.updated_at`,
		b.Node, pid, b.DiskID, b.NIC, b.MAC, owned.Valid && b.OwnedDiskID == b.DiskID, owned, b.Attached, s.stamp())
	return dbErr(err, what)
}

// Boot returns a node's boot config.
func (s *DB) Boot(ctx context.Context, node string) (core.BootConfig, error) {
	b, err := scanBoot(s.db.QueryRowContext(ctx, `SELECT `+bootCols+bootFrom+` WHERE b.node = ?`, node))
	if err != nil {
		return core.BootConfig{}, dbErr(err, fmt.Sprintf("boot config of node %q", node))
	}
	return b, nil
}

// BootByMAC returns the boot config of the node with that MAC (lower-case,
// colon-separated), for the DHCP server and the iPXE script handler.
func (s *DB) BootByMAC(ctx context.Context, mac string) (core.BootConfig, error) {
	b, err := scanBoot(s.db.QueryRowContext(ctx, `SELECT `+bootCols+bootFrom+` WHERE b.mac = ?`, mac))
	if err != nil {
		return core.BootConfig{}, dbErr(err, fmt.Sprintf("boot config of MAC %s", mac))
	}
	return b, nil
}

// Boots lists boot configs: of one project, of one disk (diskID != 0), or all.
func (s *DB) Boots(ctx context.Context, project string, diskID int64) ([]core.BootConfig, error) {
	q, args := `SELECT `+bootCols+bootFrom+` WHERE 1 = 1`, []any{}
	if project != "" {
		q, args = q+` AND p.name = ?`, append(args, project)
	}
	if diskID != 0 {
		q, args = q+` AND b.disk_id = ?`, append(args, diskID)
	}
	return s.queryBoots(ctx, "boot configs", q+` ORDER BY b.node`, args...)
}

// DiskBoots lists the boot configs of the nodes that boot one of
// project's disks, whatever project the boot config is in.
func (s *DB) DiskBoots(ctx context.Context, project string) ([]core.BootConfig, error) {
	return s.queryBoots(ctx, fmt.Sprintf("boot configs of project %q's disks", project), `SELECT `+bootCols+bootFrom+`
		WHERE i.project_id = (SELECT id FROM projects WHERE name = ?) ORDER BY b.node`, project)
}

func (s *DB) queryBoots(ctx context.Context, what, q string, args ...any) ([]core.BootConfig, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, dbErr(err, what)
	}
	defer rows.Close()
	var out []core.BootConfig
	for rows.Next() {
		b, err := scanBoot(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// DeleteBoot forgets a node's boot config; a missing one is not an error.
func (s *DB) DeleteBoot(ctx context.Context, node string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM boot_configs WHERE node = ?`, node)
	return dbErr(err, fmt.Sprintf("boot config of node %q", node))
}
