package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3/lock"

	"github.com/bmi-go/bmi/service/fault"
)

// instanceLockID is the PostgreSQL advisory lock a bmid holds while it is
// the only gateway allowed on the database (see LockInstance).
const instanceLockID int64 = 0x626d6900_00000001 // "bmi\0", 1

// pgPoolSize is how many connections to PostgreSQL a bmid opens at most,
// and keeps open while idle (until ConnMaxIdleTime). Keeping fewer idle
// than open churned sessions under API load: each burst beyond the idle
// ones closed its surplus connections on release, and the next opened new
// ones (a backend forked and authenticated, every statement prepared
// again): 140 new sessions in 8 s at 100 API clients, on a machine whose
// CPU the API already saturates.
const pgPoolSize = 16

// OpenPostgres connects to the PostgreSQL database dsn names (a libpq
// connection string or URL; pgx also reads PGPASSWORD and ~/.pgpass) and
// migrates it to the newest schema. Several processes may open one
// database at once: migrations run under an advisory lock, once.
func OpenPostgres(ctx context.Context, dsn string, log *slog.Logger) (*DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message never repeats the password.
		return nil, fault.Errorf(fault.Invalid, "state database: PostgreSQL connection string: %v", err)
	}
	where := fmt.Sprintf("PostgreSQL database %q on %s (user %q)", cfg.Database, cfg.Host, cfg.User)
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(pgPoolSize)
	db.SetMaxIdleConns(pgPoolSize)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fault.Errorf(fault.Unavailable, "state database: %s: %v", where, err)
	}
	s := &DB{db: conn{raw: db, dialect: postgres}, log: log, now: time.Now}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(ctx, locker); err != nil {
		db.Close()
		return nil, fmt.Errorf("state database: %s: %w", where, err)
	}
	return s, nil
}

// LockInstance makes this process the only bmid on a PostgreSQL database
// until Close: it holds a session advisory lock on a connection of its own,
// and a second bmid is refused with a conflict naming the holder. It is
// the PostgreSQL counterpart of the state file's flock (SQLite): a bmid
// that is not a gateway (it exports every disk of its database) takes it,
// and so does bmid migrate-legacy. Gateways hold it shared (Join): a lone
// bmid and gateways exclude each other. On SQLite it does nothing.
func (s *DB) LockInstance(ctx context.Context) error {
	if s.db.dialect.name != postgres.name {
		return nil
	}
	return s.advisoryLock(ctx, instanceLockID, "another bmid uses this PostgreSQL database", false)
}

// advisoryLock takes the session advisory lock key on a connection of its
// own, held until Close (or until this process dies: PostgreSQL ends the
// session and the lock with it); if another session holds it, the error is
// a conflict that says busy and names the holder.
// Shared, it is taken alongside other shared holders of the key and
// refused while an exclusive one holds it.
func (s *DB) advisoryLock(ctx context.Context, key int64, busy string, shared bool) error {
	c, err := s.db.raw.Conn(ctx)
	if err != nil {
		return dbErr(err, "state database advisory lock")
	}
	var got bool
	try, unlock := `SELECT pg_try_advisory_lock($1)`, `SELECT pg_advisory_unlock($1)`
	if shared {
		try, unlock = `SELECT pg_try_advisory_lock_shared($1)`, `SELECT pg_advisory_unlock_shared($1)`
	}
	if err := c.QueryRowContext(ctx, try, key).Scan(&got); err != nil {
		c.Close()
		return dbErr(err, "state database advisory lock")
	}
	if !got {
		holder := lockHolder(ctx, c, key)
		c.Close()
		return fault.Errorf(fault.Conflict, "state database: %s (%s); stop it first", busy, holder)
	}
	prev := s.release
	s.release = func() error {
		_, err := c.ExecContext(context.Background(), unlock, key)
		if cerr := c.Close(); err == nil {
			err = cerr
		}
		if prev != nil {
			if perr := prev(); err == nil {
				err = perr
			}
		}
		return err
	}
	return nil
}

// lockHolder describes the session holding the advisory lock key.
func lockHolder(ctx context.Context, c *sql.Conn, key int64) string {
	var pid int
	var addr, app string
	err := c.QueryRowContext(ctx, `SELECT a.pid, COALESCE(host(a.client_addr), 'local socket'), a.application_name
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 LIMIT 1`,
		uint32(uint64(key)>>32), uint32(uint64(key)&0xffffffff)).Scan(&pid, &addr, &app)
	if err != nil {
		return "holder unknown"
	}
	return fmt.Sprintf("server process %d, client %s %s", pid, addr, app)
}
