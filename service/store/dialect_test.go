package store

import (
	"context"
	"database/sql"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/bmi-go/bmi/internal/pgtest"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

func TestBind(t *testing.T) {
	tests := map[string]struct{ in, sqlite, postgres string }{
		"none":   {`SELECT 1`, `SELECT 1`, `SELECT 1`},
		"three":  {`UPDATE t SET a = ?, b = ? WHERE c = ?`, `UPDATE t SET a = ?, b = ? WHERE c = ?`, `UPDATE t SET a = $1, b = $2 WHERE c = $3`},
		"quoted": {`SELECT '?' FROM t WHERE a = ? AND b = 'x?y'`, `SELECT '?' FROM t WHERE a = ? AND b = 'x?y'`, `SELECT '?' FROM t WHERE a = $1 AND b = 'x?y'`},
		"ten":    {strings.Repeat("?,", 9) + "?", strings.Repeat("?,", 9) + "?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10"},
	}
	for name, tc := range tests {
		if got := sqlite.bind(tc.in); got != tc.sqlite {
			t.Errorf("%s: sqlite bind = %q, want %q", name, got, tc.sqlite)
		}
		for range 2 { // the second from the cache
			if got := postgres.bind(tc.in); got != tc.postgres {
				t.Errorf("%s: postgres bind = %q, want %q", name, got, tc.postgres)
			}
		}
	}
}

// FuzzBind: the PostgreSQL form of a query has no ? left outside quotes
// and one $n for each that was there, in order.
func FuzzBind(f *testing.F) {
	for _, s := range []string{`a = ? AND b = ?`, `'?' ?`, `'`, `??`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		d := dialect{name: "postgres", numbered: true, cache: postgres.cache}
		out := d.bind(q)
		quoted, n := false, 0
		for i := 0; i < len(q); i++ {
			if q[i] == '\'' {
				quoted = !quoted
			}
			if q[i] == '?' && !quoted {
				n++
			}
		}
		if n > 0 && !strings.Contains(out, "$"+strconv.Itoa(n)) {
			t.Fatalf("bind(%q) = %q: no $%d", q, out, n)
		}
		if len(out) < len(q) {
			t.Fatalf("bind(%q) = %q: shorter", q, out)
		}
	})
}

// TestSchemasAgree: the SQLite and the PostgreSQL migrations make the same
// tables with the same columns in the same order, the same NOT NULLs and
// the same kind of value (text or number) — the files under
// migrations/postgres stay in step with those they replace.
func TestSchemasAgree(t *testing.T) {
	ctx := context.Background()
	lite := testDB{engine: "sqlite", where: t.TempDir() + "/bmi.db"}.open(t)
	pg := testDB{engine: "postgres", where: pgtest.Database(t)}.open(t)
	describe := func(s *DB, q, tq string) map[string]string {
		rows, err := s.db.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			tables = append(tables, n)
		}
		rows.Close()
		out := map[string]string{}
		for _, tb := range tables {
			cols, err := s.db.QueryContext(ctx, strings.ReplaceAll(tq, "TABLE", tb))
			if err != nil {
				t.Fatal(err)
			}
			var desc []string
			for cols.Next() {
				var name, typ string
				var notNull bool
				if err := cols.Scan(&name, &typ, &notNull); err != nil {
					t.Fatal(err)
				}
				kind := "number"
				if strings.Contains(strings.ToUpper(typ), "TEXT") {
					kind = "text"
				}
				desc = append(desc, name+" "+kind+map[bool]string{true: " not null", false: ""}[notNull])
			}
			cols.Close()
			out[tb] = strings.Join(desc, ", ")
		}
		return out
	}
	a := describe(lite, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version'`,
		`SELECT name, type, "notnull" <> 0 OR pk <> 0 FROM pragma_table_info('TABLE') ORDER BY cid`)
	b := describe(pg, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'goose_db_version'`,
		`SELECT column_name, data_type, is_nullable = 'NO' FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'TABLE' ORDER BY ordinal_position`)
	if len(a) < 8 || len(a) != len(b) {
		t.Fatalf("tables: sqlite %d, postgres %d:\n%v\n%v", len(a), len(b), a, b)
	}
	for tb, cols := range a {
		if b[tb] != cols {
			t.Errorf("table %s:\n  sqlite:   %s\n  postgres: %s", tb, cols, b[tb])
		}
	}
}

// TestLockInstance: on PostgreSQL a second bmid on the same database is
// refused with a conflict until the first closes.
func TestLockInstance(t *testing.T) {
	ctx := context.Background()
	d := testDB{engine: "postgres", where: pgtest.Database(t)}
	a, b := d.open(t), d.open(t)
	if err := a.LockInstance(ctx); err != nil {
		t.Fatal(err)
	}
	err := b.LockInstance(ctx)
	if fault.Of(err) != fault.Conflict || !strings.Contains(err.Error(), "another bmid") {
		t.Fatalf("second LockInstance: %v, want a conflict", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.LockInstance(ctx); err != nil {
		t.Fatalf("LockInstance after the holder closed: %v", err)
	}
	s, err := Open(ctx, ":memory:", logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.LockInstance(ctx); err != nil {
		t.Fatalf("SQLite LockInstance: %v", err)
	}
}

// TestPostgresPoolKeepsIdle: connections that a burst used all at once
// stay open in the PostgreSQL pool for the next one; none is closed for
// being idle beyond a smaller limit (which churned sessions under API
// load: a backend forked and every statement prepared again).
func TestPostgresPoolKeepsIdle(t *testing.T) {
	ctx := context.Background()
	s := testDB{engine: "postgres", where: pgtest.Database(t)}.open(t)
	var held []*sql.Conn
	for range pgPoolSize {
		c, err := s.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	for _, c := range held {
		if err := c.Close(); err != nil { // back to the pool
			t.Fatal(err)
		}
	}
	st := s.SQL().Stats()
	if st.OpenConnections != pgPoolSize || st.Idle != pgPoolSize || st.MaxIdleClosed != 0 {
		t.Fatalf("after a burst of %d connections: %d open, %d idle, %d closed for idleness; want all kept open", pgPoolSize, st.OpenConnections, st.Idle, st.MaxIdleClosed)
	}
}

// hiding is a migrations directory without one file: the migrations of an
// older bmid.
type hiding struct {
	fs.FS
	name string
}

func (h hiding) ReadDir(name string) ([]fs.DirEntry, error) {
	all, err := fs.ReadDir(h.FS, name)
	return slices.DeleteFunc(all, func(e fs.DirEntry) bool { return e.Name() == h.name }), err
}

// TestMigrateOutOfOrder: a database that a bmid without migration 00006
// brought to a later version (main had 00007 and 00008 first) opens: the
// missing migration is applied out of order.
func TestMigrateOutOfOrder(t *testing.T) { eachEngine(t, testMigrateOutOfOrder) }

func testMigrateOutOfOrder(t *testing.T, d testDB) {
	ctx := context.Background()
	driver, dsn, dl := "sqlite", d.where, sqlite
	if d.engine == "postgres" {
		driver, dl = "pgx", postgres
	}
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fsys, err := migrationsFor(dl)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(dl.goose, raw, hiding{fsys, "00006_placements.sql"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`SELECT COUNT(*) FROM placements`); err == nil {
		t.Fatal("the older migrations made placements")
	}
	s := d.open(t)
	var n int
	if err := s.SQL().QueryRow(`SELECT COUNT(*) FROM placements`).Scan(&n); err != nil {
		t.Fatalf("after opening with every migration: %v", err)
	}
}
