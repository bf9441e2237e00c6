package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/internal/pgtest"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

func TestReadDSNFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := map[string]struct {
		path string
		want string // the DSN, or a substring of the error
		ok   bool
	}{
		"good":          {write("good", "host=/run/postgresql password=s3cret\n", 0o600), "host=/run/postgresql password=s3cret", true},
		"world-readble": {write("open", "host=db password=s3cret", 0o644), "mode 0644 lets others read it; want 0600", false},
		"empty":         {write("empty", " \n", 0o600), "empty", false},
		"missing":       {filepath.Join(dir, "nope"), "no such file", false},
		"directory":     {dir, "not a regular file", false},
	}
	for name, tc := range tests {
		got, err := readDSNFile(tc.path)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("%s: readDSNFile = %q, %v; want %q", name, got, err, tc.want)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret")) {
			t.Errorf("%s: readDSNFile = %q, %v; want an error with %q and no password", name, got, err, tc.want)
		}
	}
}

// TestOpenStatePostgres: bmid opens a PostgreSQL state from state.dsn_file
// and is its only user: a second one is refused with a conflict until the
// first closes, also when the first dies without closing (SIGKILL ends its
// session, which ends the lock; covered by TestCrashReal/postgres).
func TestOpenStatePostgres(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "state.dsn")
	if err := os.WriteFile(file, []byte(pgtest.Database(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.State{Engine: "postgres", DSNFile: file}
	a, lock, err := openState(ctx, cfg, false, logging.Discard())
	if err != nil || lock != nil || a.Engine() != "postgres" {
		t.Fatalf("openState = %v, %v, %v", a, lock, err)
	}
	if _, _, err := openState(ctx, cfg, false, logging.Discard()); fault.Of(err) != fault.Conflict || !strings.Contains(err.Error(), "another bmid uses this PostgreSQL database") {
		t.Fatalf("a second bmid: %v, want a conflict", err)
	}
	a.Close()
	b, _, err := openState(ctx, cfg, false, logging.Discard())
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	b.Close()
	if _, _, err := openState(ctx, config.State{Engine: "postgres", DSN: "host=/nonexistent-bmi-socket-dir connect_timeout=2"}, false, logging.Discard()); fault.Of(err) != fault.Unavailable {
		t.Fatalf("an unreachable server: %v, want unavailable", err)
	}
}
