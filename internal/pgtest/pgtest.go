// Package pgtest gives tests a PostgreSQL database of their own, in the
// throwaway server `make test` starts (scripts/with-test-postgres.sh names
// its maintenance database in BMI_TEST_PG_DSN): every call makes a new,
// empty database and drops it when the test ends. Without a server the
// test skips with a message saying how to get one, or fails under CI=true
// (internal/testenv).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/bmi-go/bmi/internal/testenv"
)

// EnvDSN names the maintenance database of the test server.
const EnvDSN = "BMI_TEST_PG_DSN"

// Available reports whether a test server was given.
func Available() bool { return os.Getenv(EnvDSN) != "" }

// Database creates an empty database for tb and returns its connection
// string; the database is dropped (with any session still on it) when tb
// ends. It stops tb (testenv.Missing) when no server was given.
func Database(tb testing.TB) string {
	tb.Helper()
	testenv.SkipShort(tb, "a PostgreSQL server")
	admin := os.Getenv(EnvDSN)
	if admin == "" {
		testenv.Missing(tb, "a test PostgreSQL server ("+EnvDSN+")",
			"run the tests under scripts/with-test-postgres.sh, as make test does (Debian's postgresql, make deps)")
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		tb.Fatalf("%s: %v", EnvDSN, err)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	name := "bmitest_" + hex.EncodeToString(b)
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		tb.Fatalf("test PostgreSQL: create database %s: %v", name, err)
	}
	tb.Cleanup(func() { drop(tb, admin, name) })
	return withDatabase(admin, name)
}

// withDatabase returns dsn (a URL or key=value words) naming database
// name instead of its own.
func withDatabase(dsn, name string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	return fmt.Sprintf("%s dbname=%s", dsn, name)
}

func drop(tb testing.TB, admin, name string) {
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		tb.Error(err)
		return
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
		tb.Errorf("test PostgreSQL: drop database %s: %v", name, err)
	}
}
