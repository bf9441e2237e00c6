package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/bmi-go/bmi/internal/pgtest"
	"github.com/bmi-go/bmi/service/logging"
)

// testDB is one test's database on one engine: a file for SQLite, a
// database of its own in the test server for PostgreSQL.
type testDB struct {
	engine string
	where  string // path or connection string
}

// open opens (or reopens: a restart of bmid) the test's database; it is
// closed when the test ends.
func (d testDB) open(t *testing.T) *DB {
	t.Helper()
	ctx := context.Background()
	var s *DB
	var err error
	if d.engine == "postgres" {
		s, err = OpenPostgres(ctx, d.where, logging.Discard())
	} else {
		s, err = Open(ctx, d.where, logging.Discard())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eachEngine runs f on SQLite and on PostgreSQL, as subtests named after
// the engine; the PostgreSQL one skips when no test server was given
// (pgtest).
func eachEngine(t *testing.T, f func(t *testing.T, d testDB)) {
	t.Run("sqlite", func(t *testing.T) {
		f(t, testDB{engine: "sqlite", where: filepath.Join(t.TempDir(), "bmi.db")})
	})
	t.Run("postgres", func(t *testing.T) {
		f(t, testDB{engine: "postgres", where: pgtest.Database(t)})
	})
}
