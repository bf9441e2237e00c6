package hilmock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"
)

// migrations is hil-mock's schema, one step per entry, applied in order and
// never edited once released: a change is a new entry. The number of steps
// applied is kept in SQLite's user_version.
var migrations = []string{
	// 1: the HIL model subset.
	`CREATE TABLE projects (name TEXT PRIMARY KEY);
	CREATE TABLE users (
		name TEXT PRIMARY KEY,
		password_hash TEXT NOT NULL,
		is_admin INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE user_projects (
		user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
		project TEXT NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
		PRIMARY KEY (user, project)
	);
	CREATE TABLE nodes (
		name TEXT PRIMARY KEY,
		project TEXT REFERENCES projects(name),
		power_address TEXT NOT NULL DEFAULT ''
	);
	CREATE TABLE node_metadata (
		node TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
		label TEXT NOT NULL,
		value TEXT NOT NULL, -- JSON text, as HIL stores it
		PRIMARY KEY (node, label)
	);
	CREATE TABLE nics (
		node TEXT NOT NULL REFERENCES nodes(name) ON DELETE CASCADE,
		label TEXT NOT NULL,
		macaddr TEXT NOT NULL,
		port TEXT NOT NULL DEFAULT '',
		switch TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (node, label)
	);
	CREATE TABLE networks (
		name TEXT PRIMARY KEY,
		owner TEXT REFERENCES projects(name), -- NULL: owned by the admins
		vlan INTEGER NOT NULL UNIQUE,
		allocated INTEGER NOT NULL DEFAULT 0   -- VLAN taken from the pool
	);
	CREATE TABLE network_access (
		network TEXT NOT NULL REFERENCES networks(name) ON DELETE CASCADE,
		project TEXT NOT NULL REFERENCES projects(name),
		PRIMARY KEY (network, project)
	);
	CREATE TABLE attachments (
		node TEXT NOT NULL,
		nic TEXT NOT NULL,
		network TEXT NOT NULL REFERENCES networks(name),
		channel TEXT NOT NULL,
		PRIMARY KEY (node, nic, network),
		FOREIGN KEY (node, nic) REFERENCES nics(node, label) ON DELETE CASCADE
	);
	CREATE TABLE actions (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		id TEXT NOT NULL UNIQUE,          -- the status_id
		node TEXT NOT NULL,
		nic TEXT NOT NULL,
		op TEXT NOT NULL,                 -- connect | detach
		network TEXT NOT NULL,
		channel TEXT NOT NULL,
		status TEXT NOT NULL,             -- PENDING | DONE | ERROR
		error TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX actions_nic ON actions (node, nic, status);
	CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
}

// openDB opens (creating if needed) the SQLite database at path and
// applies the migrations it lacks. It reports whether the database was new.
func openDB(ctx context.Context, path string) (*sql.DB, bool, error) {
	if path == "" {
		return nil, false, errors.New("hil-mock database path is empty")
	}
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	// WAL with NORMAL sync: durable across process crashes, may lose the
	// last commits on power loss; right for an emulator.
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, false, fmt.Errorf("open hil-mock database %s: %w", path, err)
	}
	// One connection: every transaction is serialised, which is all the
	// concurrency an emulator needs, and no SQLITE_BUSY can happen.
	db.SetMaxOpenConns(1)
	fresh, err := migrate(ctx, db)
	if err != nil {
		db.Close()
		return nil, false, fmt.Errorf("hil-mock database %s: %w", path, err)
	}
	return db, fresh, nil
}

// migrate applies the missing migrations in one transaction each and
// reports whether the database had none before.
func migrate(ctx context.Context, db *sql.DB) (bool, error) {
	var have int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	if have > len(migrations) {
		return false, fmt.Errorf("schema version %d is newer than this hil-mock knows (%d)", have, len(migrations))
	}
	for v := have; v < len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return false, err
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return false, fmt.Errorf("migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return false, fmt.Errorf("migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return false, fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	return have == 0, nil
}

// inTx runs fn in a transaction, committing if fn returns nil.
func inTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
