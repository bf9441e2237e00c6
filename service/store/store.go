// Package store is BMI's state database on SQLite (a pure-Go driver, so no
// cgo): projects, images, snapshots and disks, iSCSI targets, boot configs,
// DHCP leases and the operation journal.
//
// The schema is versioned from the first table (goose migrations embedded in
// the binary, applied at Open); foreign keys are on and the database runs in
// WAL mode. SQLite implements the core package's Store interface; a
// PostgreSQL implementation can satisfy the same interface with the same
// migrations where the SQL allows.
package store

import (
	"context"
	"crypto/cipher"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/bmi-go/bmi/service/fault"
)

//go:embed migrations/*.sql
var migrations embed.FS

// SQLite is the state database.
type SQLite struct {
	db   *sql.DB
	log  *slog.Logger
	now  func() time.Time
	aead cipher.AEAD // seals CHAP secrets; nil: none (see SetKey)
}

// Open opens (creating if needed) the database at path and migrates it to
// the newest schema. path ":memory:" gives a private in-memory database.
func Open(ctx context.Context, path string, log *slog.Logger) (*SQLite, error) {
	if path == "" {
		return nil, fault.Errorf(fault.Invalid, "state database: no path")
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	if path == ":memory:" {
		dsn = "file::memory:?_pragma=foreign_keys(1)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	// One connection: SQLite serialises writers anyway, and a single
	// connection makes every transaction see the previous one's writes.
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fault.Errorf(fault.Unavailable, "state database %s: %v", path, err)
	}
	s := &SQLite{db: db, log: log, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	return s, nil
}

func (s *SQLite) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.db, sub)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range res {
		s.log.Info("state database migrated", "version", r.Source.Version, "file", r.Source.Path)
	}
	return nil
}

// SchemaVersion returns the schema version the database is at.
func (s *SQLite) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&v)
	return v, err
}

// Close closes the database.
func (s *SQLite) Close() error { return s.db.Close() }

// Ping checks that the database answers (for /readyz).
func (s *SQLite) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fault.Errorf(fault.Unavailable, "state database: %v", err)
	}
	return nil
}

func (s *SQLite) stamp() int64 { return s.now().UnixNano() }

func fromStamp(n int64) time.Time { return time.Unix(0, n).UTC() }

// dbErr classifies a database error: unique and foreign-key violations
// become "exists" and "conflict", sql.ErrNoRows "not found"; what names the
// object is the caller's message.
func dbErr(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, fault.ErrNotFound)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "UNIQUE constraint failed"):
		return fmt.Errorf("%s: %w", what, fault.ErrExists)
	case strings.Contains(msg, "FOREIGN KEY constraint failed"):
		return fault.Errorf(fault.Conflict, "%s: still referenced", what)
	case strings.Contains(msg, "database is locked"), strings.Contains(msg, "SQLITE_BUSY"):
		return fault.Errorf(fault.Unavailable, "%s: database busy: %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// rowsAffected turns "no row changed" into a not-found error.
func rowsAffected(res sql.Result, err error, what string) error {
	if err != nil {
		return dbErr(err, what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(err, what)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, fault.ErrNotFound)
	}
	return nil
}
