package cephlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEnsureClient makes a bmid user on the test cluster of
// scripts/with-test-ceph.sh (BMI_TEST_CEPH_CONF): it can write its pool
// and not another one.
func TestEnsureClient(t *testing.T) {
	conf := os.Getenv("BMI_TEST_CEPH_CONF")
	if conf == "" {
		t.Skip("BMI_TEST_CEPH_CONF is not set (run under scripts/with-test-ceph.sh)")
	}
	c, err := New(Options{Dir: filepath.Dir(conf)})
	if err != nil {
		t.Fatal(err)
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := "bmid-t" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if _, err := c.EnsureClient(ctx, "bad name", nil); err == nil {
		t.Fatal("EnsureClient accepted a name with a space")
	}
	path, err := c.EnsureClient(ctx, name, BMIDCaps(PoolName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.ceph(ctx, "auth", "del", "client."+name)
		_ = os.Remove(path)
	})
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("keyring %s: %v, mode %v; want 0600", path, err, st.Mode().Perm())
	}
	again, err := c.EnsureClient(ctx, name, BMIDCaps(PoolName))
	if err != nil || again != path {
		t.Fatalf("EnsureClient again = %s, %v", again, err)
	}
	rados := func(args ...string) (string, error) {
		out, err := exec.Command("rados", append([]string{"--conf", conf, "--id", name, "--keyring", path}, args...)...).CombinedOutput()
		return string(out), err
	}
	obj := "cephlab-" + name
	if out, err := rados("-p", PoolName, "put", obj, "/etc/hostname"); err != nil {
		t.Fatalf("client.%s cannot write pool %s: %v: %s", name, PoolName, err, out)
	}
	_, _ = rados("-p", PoolName, "rm", obj)
	out, err := c.ceph(ctx, "osd", "pool", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(out) {
		if p == PoolName {
			continue
		}
		if out, err := rados("-p", p, "put", obj, "/etc/hostname"); err == nil {
			_ = exec.Command("rados", "--conf", conf, "-p", p, "rm", obj).Run()
			t.Fatalf("client.%s wrote to pool %s: %s", name, p, out)
		}
	}
}
