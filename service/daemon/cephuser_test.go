//go:build ceph_preview

package daemon

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CephCaps are the capabilities bmid's own cephx user needs, and no more:
// RBD on its pool (images, snapshots, clones, flatten, exclusive lock) and
// the monitor's rbd profile, which also allows "osd blocklist add" (what
// fencing a dead gateway's client needs, [restart]/[gateways]).
func cephCaps(pool string) []string {
	return []string{"mon", "profile rbd", "osd", "profile rbd pool=" + pool, "mgr", "profile rbd pool=" + pool}
}

// leastPrivilegeUser creates client.<name> with cephCaps in dir and
// returns its id and keyring; the user is deleted when the test ends.
func leastPrivilegeUser(t *testing.T, conf, pool, name, dir string) (string, string) {
	t.Helper()
	keyring := filepath.Join(dir, "ceph.client."+name+".keyring")
	args := append([]string{"--conf", conf, "auth", "get-or-create", "client." + name}, cephCaps(pool)...)
	if out, err := exec.Command("ceph", append(args, "-o", keyring)...).CombinedOutput(); err != nil {
		t.Fatalf("ceph auth get-or-create client.%s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ceph", "--conf", conf, "auth", "del", "client."+name).Run() })
	return name, keyring
}

// TestLeastPrivilegeOtherPool: the user bmid runs as in TestEndToEnd
// cannot write to or list any other pool of the cluster.
func TestLeastPrivilegeOtherPool(t *testing.T) {
	s := &site{t: t, cfg: siteConfig(t, newUID(t), "http://127.0.0.1:1", t.TempDir())}
	conf, pool := s.cfg.Ceph.Conf, s.cfg.Ceph.Pool
	id, keyring := leastPrivilegeUser(t, conf, pool, "bmid-"+s.cfg.UID, t.TempDir())
	out, err := exec.Command("ceph", "--conf", conf, "osd", "pool", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("ceph osd pool ls: %v: %s", err, out)
	}
	var other string
	for _, p := range strings.Fields(string(out)) {
		if p != pool {
			other = p
		}
	}
	if other == "" {
		t.Skip("the test cluster has no pool but " + pool)
	}
	as := func(args ...string) (string, error) {
		out, err := exec.Command("rados", append([]string{"--conf", conf, "--id", id, "--keyring", keyring}, args...)...).CombinedOutput()
		return string(out), err
	}
	obj := "bmi-least-privilege-" + s.cfg.UID
	if out, err := as("-p", other, "put", obj, "/etc/hostname"); err == nil {
		_ = exec.Command("rados", "--conf", conf, "-p", other, "rm", obj).Run()
		t.Fatalf("client.%s wrote to pool %s:\n%s", id, other, out)
	} else if !strings.Contains(out, "Operation not permitted") {
		t.Fatalf("write to pool %s failed, but not for lack of permission: %s", other, out)
	}
	if out, err := as("-p", other, "ls"); err == nil {
		t.Fatalf("client.%s listed pool %s:\n%s", id, other, out)
	}
	// Fencing needs blocklisting: the rbd profile allows it (a documentation
	// address, expiring after 1 s; nothing is sent anywhere).
	if out, err := exec.Command("ceph", "--conf", conf, "--id", id, "--keyring", keyring,
		"osd", "blocklist", "add", "192.0.2.1:0/1", "1").CombinedOutput(); err != nil {
		t.Fatalf("client.%s cannot blocklist (fencing): %v: %s", id, err, out)
	}
	// ...while its own pool works.
	if out, err := as("-p", pool, "put", obj, "/etc/hostname"); err != nil {
		t.Fatalf("client.%s cannot write to its own pool %s: %v: %s", id, pool, err, out)
	}
	if out, err := as("-p", pool, "rm", obj); err != nil {
		t.Fatalf("rados rm: %v: %s", err, out)
	}
}
