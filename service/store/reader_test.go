package store

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestReadersBesideWriter: on SQLite, reads do not queue behind an open
// write transaction (the API's lists beside an operation's writes), they
// see every committed write and none uncommitted, and a query that
// writes through QueryRowContext (INSERT … RETURNING) still goes to the
// writer.
func TestReadersBesideWriter(t *testing.T) {
	ctx := context.Background()
	s := testDB{engine: "sqlite", where: filepath.Join(t.TempDir(), "bmi.db")}.open(t)
	if _, err := s.CreateProject(ctx, "committed"); err != nil { // INSERT … RETURNING
		t.Fatal(err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO projects (name, created_at) VALUES (?, ?)`, "pending", s.stamp()); err != nil {
		t.Fatal(err)
	}
	// several readers at once while the writer's transaction is open
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 2 * readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ps, err := s.Projects(rctx)
			if err != nil {
				t.Errorf("a read beside an open write transaction: %v", err)
				return
			}
			if len(ps) != 1 || ps[0].Name != "committed" {
				t.Errorf("a read beside an open write transaction = %v, want the committed project only", ps)
			}
		}()
	}
	wg.Wait()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	ps, err := s.Projects(ctx)
	if err != nil || len(ps) != 2 {
		t.Fatalf("after the commit: %v, %v; want both projects", ps, err)
	}
}

func TestReadOnly(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1":                              true,
		"\n\t  select id FROM projects":         true,
		"INSERT INTO x VALUES (1) RETURNING id": false,
		"UPDATE x SET a = 1":                    false,
		"SEL":                                   false,
		"":                                      false,
		"WITH a AS (SELECT 1) DELETE FROM x":    false,
	} {
		if got := readOnly(q); got != want {
			t.Errorf("readOnly(%q) = %v, want %v", q, got, want)
		}
	}
}
