// Package testenv lets tests that need a real component (Ceph, libvirt, a
// network namespace, a real client) say so: outside CI such a test skips
// with a message naming what to install; under CI=true it fails, because a
// CI run that skipped the real parts proves nothing.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing stops the test because a real component is missing: Fatal under
// CI, Skip otherwise. hint says how to get it ("make deps").
func Missing(t testing.TB, what, hint string) {
	t.Helper()
	SkipShort(t, what)
	if InCI() {
		t.Fatalf("%s is missing (CI=true, so this fails instead of skipping): %s", what, hint)
	}
	t.Skipf("%s is missing: %s", what, hint)
}

// SkipShort skips a test that needs a real component (what) in the fast
// tier (go test -short: no Ceph, no namespaces, no real clients or
// daemons), also under CI: the full tier runs them.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: the fast tier runs nothing that needs %s", what)
	}
}

// RequireCommand stops the test unless the named program is on PATH; pkg
// is the Debian package that provides it. In the fast tier (-short) it
// skips the test.
func RequireCommand(t testing.TB, name, pkg string) string {
	t.Helper()
	SkipShort(t, "the command "+name)
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "command "+name, "install the Debian package "+pkg+" (make deps)")
	}
	return p
}

// RequireRoot stops the test unless it runs as root (network namespaces,
// taps, daemons that bind privileged ports).
func RequireRoot(t testing.TB) {
	t.Helper()
	SkipShort(t, "root")
	if os.Geteuid() != 0 {
		Missing(t, "root", "run the test as root")
	}
}

// RepoRoot is the module's root: the first directory holding go.mod from
// the working directory upwards (tests run in their package's directory),
// else the working directory.
func RepoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}
