#!/usr/bin/env bash
# with-test-ceph.sh CMD...: runs CMD with ONE throwaway single-node Ceph
# cluster for the whole test run (bmi-lab ceph start in a temp dir), passed
# to the tests as BMI_TEST_CEPH_CONF / BMI_TEST_CEPH_POOL (internal/cephtest).
# The cluster is always stopped and purged afterwards, even on failure or
# Ctrl-C. After CMD, the pool must be empty (the suite-wide leftover check).
# Cluster output goes to test-results/ceph-lab.log, so CMD's own last lines
# stay the last output.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${BMI_TEST_CEPH_CONF:-}" ]; then
  exec "$@" # a cluster was given
fi
if ! command -v ceph-mon >/dev/null 2>&1; then
  echo "with-test-ceph: ceph-mon is not installed (make deps): tests that need Ceph skip, or fail under CI=true" >&2
  exec "$@"
fi

mkdir -p test-results
log=test-results/ceph-lab.log
: >"$log"
tmp=$(mktemp -d /tmp/bmi-test-ceph.XXXXXX)
dir=$tmp/cluster
bin=$tmp/bmi-lab
cleanup() {
  if [ -x "$bin" ]; then
    "$bin" ceph purge --dir "$dir" >>"$log" 2>&1 || echo "with-test-ceph: purging $dir failed, see $log" >&2
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

${GO:-go} build -tags "${TAGS:-pacific,ceph_preview}" -o "$bin" ./cmd/bmi-lab
t0=$(date +%s)
if ! "$bin" ceph start --dir "$dir" >>"$log" 2>&1; then
  echo "with-test-ceph: the test cluster did not start; last lines of $log:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
echo "with-test-ceph: test cluster up in $(( $(date +%s) - t0 )) s ($dir)" >&2
export BMI_TEST_CEPH_CONF=$dir/ceph.conf BMI_TEST_CEPH_POOL=rbd

set +e
"$@"
rc=$?
set -e
left=$(rbd --conf "$BMI_TEST_CEPH_CONF" --pool "$BMI_TEST_CEPH_POOL" ls 2>&1) || left="rbd ls failed: $left"
if [ -n "$left" ]; then
  echo "with-test-ceph: leftover check: the tests left this in pool $BMI_TEST_CEPH_POOL: $left" >&2
  [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
