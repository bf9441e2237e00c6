package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/store"
)

// openState opens the state database the configuration names and, unless
// this bmid is one gateway among several (gateway: joined later), makes it
// its only user: on SQLite by the state file's flock, on PostgreSQL by the
// store's instance lock (an advisory lock held by a session of this
// process, released by PostgreSQL when the process dies).
func openState(ctx context.Context, cfg config.State, gateway bool, log *slog.Logger) (*store.DB, *instanceLock, error) {
	if cfg.Engine == "postgres" {
		dsn := cfg.DSN
		if cfg.DSNFile != "" {
			var err error
			if dsn, err = readDSNFile(cfg.DSNFile); err != nil {
				return nil, nil, err
			}
		}
		db, err := store.OpenPostgres(ctx, dsn, log)
		if err != nil {
			return nil, nil, err
		}
		if gateway {
			return db, nil, nil
		}
		if err := db.LockInstance(ctx); err != nil {
			db.Close()
			return nil, nil, err
		}
		return db, nil, nil
	}
	var lock *instanceLock
	if cfg.Path != ":memory:" {
		var err error
		if lock, err = lockInstance(cfg.Path); err != nil {
			return nil, nil, err
		}
	}
	db, err := store.Open(ctx, cfg.Path, log)
	if err != nil {
		lock.release()
		return nil, nil, err
	}
	return db, lock, nil
}

// readDSNFile reads state.dsn_file, which may hold a password and so must
// be a regular file only its owner can read or write.
func readDSNFile(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("state.dsn_file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("state.dsn_file %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("state.dsn_file %s: mode %04o lets others read it; want 0600 (chmod 600 %s)", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("state.dsn_file %s: %w", path, err)
	}
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("state.dsn_file %s: empty", path)
	}
	return dsn, nil
}
