// Package store is BMI's state database: projects, images, snapshots and
// disks, iSCSI targets, boot configs, DHCP leases, SCSI reservations, the
// audit log and the operation journal.
//
// One type, DB, runs on either of two engines: SQLite (a pure-Go driver,
// so no cgo; the embedded default, one bmid per database file) or
// PostgreSQL (pgx; the state several bmid gateways share). Every query is
// written once, in the SQL both understand, with "?" placeholders that the
// PostgreSQL dialect renumbers ($1, $2, ...) before it sends them; the few
// places where the engines differ (identity columns, error codes) are in
// dialect.go and in the migrations.
//
// The schema is versioned from the first table (goose migrations embedded in
// the binary, applied at Open): migrations/*.sql run on both engines, and a
// file of the same name in migrations/postgres replaces one on PostgreSQL
// where the SQL cannot be shared. On SQLite foreign keys are on and the
// database runs in WAL mode.
package store

import (
	"context"
	"crypto/cipher"
	"database/sql"
	"embed"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/bmi-go/bmi/service/fault"
)

//go:embed migrations/*.sql migrations/postgres/*.sql
var migrations embed.FS

// DB is the state database.
type DB struct {
	db   conn
	log  *slog.Logger
	now  func() time.Time
	aead cipher.AEAD // seals CHAP secrets; nil: none (see SetKey)
	// gateway is the gateway this process joined as (Gateway.Join); the
	// journal writes only operations marked with it. "": none joined.
	gateway string
	// release ends what Open holds besides the pool (PostgreSQL: the
	// instance lock's connection); nil: nothing.
	release func() error
}

// SQLite is the name DB had while SQLite was its only engine.
//
// Deprecated: use DB.
type SQLite = DB

// Open opens (creating if needed) the SQLite database at path and migrates
// it to the newest schema. path ":memory:" gives a private in-memory
// database.
func Open(ctx context.Context, path string, log *slog.Logger) (*DB, error) {
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
	// One writer connection: SQLite serialises writers anyway, and every
	// write and every transaction goes through it in order (the readers
	// below take plain SELECTs).
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fault.Errorf(fault.Unavailable, "state database %s: %v", path, err)
	}
	s := &DB{db: conn{raw: db, dialect: sqlite}, log: log, now: time.Now}
	if err := s.migrate(ctx, nil); err != nil {
		db.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	if path != ":memory:" {
		// Readers beside the writer (WAL): the API's lists and shows no
		// longer queue behind each other and behind the operations'
		// writes. query_only: a reader can never write.
		// mmap: pages read from the map, not by a pread each.
		read, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)&_pragma=mmap_size(268435456)")
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("state database %s: %w", path, err)
		}
		read.SetMaxOpenConns(readers)
		read.SetMaxIdleConns(readers)
		s.db.read, s.db.stmts = read, new(sync.Map)
	}
	return s, nil
}

// readers is the number of SQLite reader connections.
const readers = 4

// Engine names the database engine: "sqlite" or "postgres".
func (s *DB) Engine() string { return s.db.dialect.name }

// SQL returns the underlying database handle, for tools and tests that
// read tables directly; queries on it are in the engine's own dialect.
func (s *DB) SQL() *sql.DB { return s.db.raw }

// SchemaVersion returns the schema version the database is at.
func (s *DB) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&v)
	return v, err
}

// Close closes the database (and, on PostgreSQL, gives up the instance
// lock).
func (s *DB) Close() error {
	var err error
	if s.release != nil {
		err = s.release()
		s.release = nil
	}
	if cerr := s.db.close(); err == nil {
		err = cerr
	}
	return err
}

// Ping checks that the database answers (for /readyz).
func (s *DB) Ping(ctx context.Context) error {
	if err := s.db.raw.PingContext(ctx); err != nil {
		return fault.Errorf(fault.Unavailable, "state database: %v", err)
	}
	return nil
}

func (s *DB) stamp() int64 { return s.now().UnixNano() }

func fromStamp(n int64) time.Time { return time.Unix(0, n).UTC() }
