package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/bmi-go/bmi/service/fault"
)

// dialect is what differs between the engines at run time.
type dialect struct {
	name  string
	goose goose.Dialect
	// numbered: placeholders are $1, $2, ... instead of ?.
	numbered bool
	// cache maps a query as written to the query as sent (numbered only).
	cache *sync.Map
}

var (
	sqlite   = dialect{name: "sqlite", goose: goose.DialectSQLite3}
	postgres = dialect{name: "postgres", goose: goose.DialectPostgres, numbered: true, cache: new(sync.Map)}
)

// bind rewrites a query written with ? placeholders for the engine. Our
// queries never hold a ? inside a string literal, but quoted text is
// skipped all the same.
func (d dialect) bind(q string) string {
	if !d.numbered || !strings.Contains(q, "?") {
		return q
	}
	if v, ok := d.cache.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	n, quoted := 0, false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '?' && !quoted:
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	out := b.String()
	d.cache.Store(q, out)
	return out
}

// conn is the database handle every query goes through: it binds the
// placeholders for the engine.
type conn struct {
	raw     *sql.DB
	dialect dialect
	// read, when set, serves the SELECTs made outside a transaction, with
	// statements prepared once (stmts: query → *sql.Stmt): on SQLite the
	// writer is one connection, and WAL lets readers run beside it, each
	// seeing every transaction committed before its read began.
	read  *sql.DB
	stmts *sync.Map
}

// readOnly reports whether q only reads: a SELECT (an INSERT … RETURNING
// goes through QueryRowContext too, and must go to the writer).
func readOnly(q string) bool {
	q = strings.TrimLeft(q, " \t\r\n")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT")
}

// prepared returns the reader's statement for q, preparing it on first
// use; nil when there is no reader or q writes.
func (c conn) prepared(ctx context.Context, q string) *sql.Stmt {
	if c.read == nil || !readOnly(q) {
		return nil
	}
	if st, ok := c.stmts.Load(q); ok {
		return st.(*sql.Stmt)
	}
	st, err := c.read.PrepareContext(ctx, c.dialect.bind(q))
	if err != nil {
		return nil // the writer runs it and reports the error
	}
	if prev, loaded := c.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt)
	}
	return st
}

func (c conn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return c.raw.ExecContext(ctx, c.dialect.bind(q), args...)
}

func (c conn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := c.prepared(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.raw.QueryContext(ctx, c.dialect.bind(q), args...)
}

func (c conn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := c.prepared(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.raw.QueryRowContext(ctx, c.dialect.bind(q), args...)
}

// close closes the reader's statements and pool, then the writer's.
func (c conn) close() error {
	if c.read != nil {
		c.stmts.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
		c.read.Close()
	}
	return c.raw.Close()
}

func (c conn) BeginTx(ctx context.Context, opts *sql.TxOptions) (txn, error) {
	tx, err := c.raw.BeginTx(ctx, opts)
	return txn{tx: tx, dialect: c.dialect}, err
}

// txn is a transaction that binds placeholders like conn.
type txn struct {
	tx      *sql.Tx
	dialect dialect
}

func (t txn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.dialect.bind(q), args...)
}

func (t txn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.dialect.bind(q), args...)
}

func (t txn) Commit() error   { return t.tx.Commit() }
func (t txn) Rollback() error { return t.tx.Rollback() }

// migrationsFor returns the engine's migrations: migrations/*.sql, where
// PostgreSQL takes migrations/postgres/NAME instead of migrations/NAME
// when that file exists.
func migrationsFor(d dialect) (fs.FS, error) {
	base, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if d.name != postgres.name {
		return base, nil
	}
	over, err := fs.Sub(migrations, "migrations/postgres")
	if err != nil {
		return nil, err
	}
	return overlay{over: over, base: base}, nil
}

// overlay is base with the files of over in place of those of the same
// name (goose lists base, then opens each file through the overlay).
type overlay struct{ over, base fs.FS }

func (o overlay) Open(name string) (fs.File, error) {
	if f, err := o.over.Open(name); err == nil {
		if st, err := f.Stat(); err == nil && !st.IsDir() {
			return f, nil
		}
		f.Close()
	}
	return o.base.Open(name)
}

func (o overlay) ReadDir(name string) ([]fs.DirEntry, error) {
	return fs.ReadDir(o.base, name)
}

// migrate brings the schema to the newest version, applying any
// migration the database missed even below its version. locker, when set,
// serialises migrations of several processes (PostgreSQL: an advisory
// lock, so gateways that start together migrate once).
func (s *DB) migrate(ctx context.Context, locker lock.SessionLocker) error {
	fsys, err := migrationsFor(s.db.dialect)
	if err != nil {
		return err
	}
	// Migration numbers are handed out to branches ahead of their merge,
	// so a database may already be past a migration that arrives later
	// (00006 came after 00007 and 00008): it is applied then. Every
	// migration must therefore stand on its own (new tables, new
	// columns), never depending on a later number.
	opts := []goose.ProviderOption{goose.WithAllowOutofOrder(true)}
	if locker != nil {
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(s.db.dialect.goose, s.db.raw, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range res {
		s.log.Info("state database migrated", "engine", s.db.dialect.name, "version", r.Source.Version, "file", r.Source.Path)
	}
	return nil
}

// dbErr classifies a database error of either engine: unique and
// foreign-key violations become "exists" and "conflict", sql.ErrNoRows
// "not found", a busy or unreachable database "unavailable"; what names
// the object is the caller's message.
func dbErr(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, fault.ErrNotFound)
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case pg.Code == "23505": // unique_violation
			return fmt.Errorf("%s: %w", what, fault.ErrExists)
		case pg.Code == "23503": // foreign_key_violation
			return fault.Errorf(fault.Conflict, "%s: still referenced", what)
		case pg.Code == "40001", pg.Code == "40P01", pg.Code == "55P03": // serialization, deadlock, lock not available
			return fault.Errorf(fault.Conflict, "%s: a concurrent change: %v", what, pg.Message)
		case strings.HasPrefix(pg.Code, "08"), strings.HasPrefix(pg.Code, "57P"), strings.HasPrefix(pg.Code, "53"):
			return fault.Errorf(fault.Unavailable, "%s: database unavailable: %v", what, err)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	var conn *pgconn.ConnectError
	if errors.As(err, &conn) || pgconn.SafeToRetry(err) {
		return fault.Errorf(fault.Unavailable, "%s: database unavailable: %v", what, err)
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
