#!/usr/bin/env bash
# with-test-postgres.sh CMD...: runs CMD with ONE throwaway PostgreSQL for
# the whole test run, named to the tests by BMI_TEST_PG_DSN (the server's
# "postgres" database; internal/pgtest makes one database per test in it).
# The server is initdb'd in a temp dir, listens on a unix socket only (no
# TCP), runs as an unprivileged user (PostgreSQL refuses root: "postgres"
# when we are root), and is stopped and purged afterwards, even on failure
# or Ctrl-C. Server output goes to test-results/postgres.log.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${BMI_TEST_PG_DSN:-}" ]; then
  exec "$@" # a server was given
fi
bindir=""
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && bindir=$d
done
if [ -z "$bindir" ]; then
  echo "with-test-postgres: PostgreSQL is not installed (make deps: Debian's postgresql): tests on PostgreSQL skip, or fail under CI=true" >&2
  exec "$@"
fi

mkdir -p test-results
log=$PWD/test-results/postgres.log
: >"$log"
tmp=$(mktemp -d /tmp/bmi-test-pg.XXXXXX)
as=()
if [ "$(id -u)" -eq 0 ]; then
  user=postgres
  id "$user" >/dev/null 2>&1 || user=nobody
  chown "$user" "$tmp" "$log"
  as=(runuser -u "$user" --)
fi
cleanup() {
  if [ -f "$tmp/data/postmaster.pid" ]; then
    "${as[@]}" "$bindir/pg_ctl" -D "$tmp/data" -m immediate -w stop >>"$log" 2>&1 || echo "with-test-postgres: stopping the server failed, see $log" >&2
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
# Durability settings are off: the tests kill clients, never this server.
if ! "${as[@]}" "$bindir/initdb" -D "$tmp/data" -U bmi --auth=trust -E UTF8 --locale=C --no-sync >>"$log" 2>&1 ||
  ! "${as[@]}" "$bindir/pg_ctl" -D "$tmp/data" -l "$log" -w -t 120 start \
    -o "-c listen_addresses='' -k $tmp -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" >>"$log" 2>&1; then
  echo "with-test-postgres: the test server did not start; last lines of $log:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
echo "with-test-postgres: test server up in $(( $(date +%s) - t0 )) s ($tmp)" >&2
export BMI_TEST_PG_DSN="host=$tmp user=bmi dbname=postgres sslmode=disable"

set +e
"$@"
rc=$?
set -e
exit "$rc"
