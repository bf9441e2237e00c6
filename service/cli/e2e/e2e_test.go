//go:build ceph_preview

package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/sitetest"
	"github.com/bmi-go/bmi/service/cli"
	"github.com/bmi-go/bmi/service/clikit"
)

func TestMain(m *testing.M) { os.Exit(cephtest.Main(m)) }

// startBMI starts hil-mock (seeded from the example inventory) and a real
// bmid on the test Ceph cluster; it returns bmid's URL, the Ceph conf and
// the pool.
func startBMI(t *testing.T, uid string) (string, string, string) {
	t.Helper()
	s := sitetest.Start(t, sitetest.Options{UID: uid})
	return s.URL, s.Config.Ceph.Conf, s.Config.Ceph.Pool
}

// TestCLIOnRealCeph runs every command of the original BMI, the disk/boot
// split and the legacy endpoints against a real bmid on real Ceph, and
// checks the pool afterwards.
func TestCLIOnRealCeph(t *testing.T) {
	var b [3]byte
	_, _ = rand.Read(b[:])
	uid := "cli" + hex.EncodeToString(b[:])
	base, conf, pool := startBMI(t, uid)
	golden := uid + "-golden"
	if out, err := cephtest.RBD(conf, pool, "create", "--size", "64M", golden); err != nil {
		t.Fatalf("rbd create: %v %s", err, out)
	}
	t.Cleanup(func() {
		cephtest.RBD(conf, pool, "rm", golden)
		cephtest.RBD(conf, pool, "rm", uid+"-exported")
	})
	admin := map[string]string{"BMI_URL": base, "HIL_USERNAME": "hiladmin", "HIL_PASSWORD": "admin-secret"}
	alice := map[string]string{"BMI_URL": base, "HIL_USERNAME": "alice", "HIL_PASSWORD": "alice-secret"}
	bob := map[string]string{"BMI_URL": base, "HIL_USERNAME": "bob", "HIL_PASSWORD": "bob-secret"}
	bmi := func(env map[string]string, want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		root := cli.NewRoot(cli.Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""), Getenv: func(k string) string { return env[k] }})
		if code := clikit.Run(context.Background(), root, args, &errb); code != want {
			t.Fatalf("bmi %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out.String(), errb.String())
		}
		return out.String()
	}
	contains := func(out, want string) {
		t.Helper()
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	bmi(admin, 0, "project", "create", "tenant-a")
	bmi(admin, 0, "project", "create", "tenant-b")
	contains(bmi(admin, 0, "project", "ls"), "tenant-b")
	contains(bmi(admin, 0, "import", "tenant-a", golden, "--name", "debian"), "64 MiB")
	bmi(alice, 1, "import", "tenant-a", golden, "--name", "x")
	contains(bmi(alice, 0, "ls", "tenant-a"), "debian")
	bmi(bob, 1, "ls", "tenant-a")
	contains(bmi(admin, 0, "cp", "tenant-a", "debian", "tenant-b", "deb-copy"), "deb-copy")
	contains(bmi(bob, 0, "mv", "tenant-b", "deb-copy", "tenant-b", "deb-moved"), "deb-moved")
	bmi(admin, 0, "export", "tenant-b", "deb-moved", uid+"-exported")
	if out, err := cephtest.RBD(conf, pool, "info", uid+"-exported"); err != nil || strings.Contains(out, "parent:") {
		t.Fatalf("exported image: %v\n%s", err, out)
	}
	bmi(bob, 0, "rm", "tenant-b", "deb-moved")
	contains(bmi(alice, 0, "pro", "tenant-a", "node-01", "debian", "eth0"), "iqn.")
	contains(bmi(alice, 0, "showpro", "tenant-a"), "node-01")
	contains(bmi(alice, 0, "snap", "create", "tenant-a", "node-01", "snap1"), "snap1")
	contains(bmi(alice, 0, "snap", "ls", "tenant-a"), "debian")
	contains(bmi(alice, 0, "iscsi", "ls", "tenant-a"), "yes")
	bmi(alice, 0, "iscsi", "rm", "tenant-a", "node-01")
	contains(bmi(alice, 0, "iscsi", "ls", "tenant-a"), "no")
	bmi(alice, 0, "iscsi", "create", "tenant-a", "node-01")
	bmi(alice, 1, "node", "ip", "tenant-a", "node-01") // no DHCP lease yet
	bmi(alice, 0, "dpro", "tenant-a", "node-01", "eth0")
	contains(bmi(alice, 0, "disk", "create", "tenant-a", "snap1", "d1"), "d1")
	contains(bmi(alice, 0, "boot", "set", "tenant-a", "node-02", "d1", "eth0"), "52:54:00:00:01:02")
	contains(bmi(alice, 0, "boot", "show", "tenant-a", "node-02"), "d1")
	contains(bmi(alice, 0, "showdisks", "tenant-a"), "node-02")
	// The ACL: node-02's own name (it boots d1), then one added and removed.
	contains(bmi(alice, 0, "iscsi", "acl", "ls", "tenant-a", "d1"), ".node.node-02")
	contains(bmi(alice, 0, "iscsi", "acl", "add", "tenant-a", "d1", "iqn.2026-11.org.example:rescue"), "added")
	bmi(alice, 1, "iscsi", "acl", "add", "tenant-a", "d1", "NOT-AN-IQN")
	bmi(bob, 1, "iscsi", "acl", "ls", "tenant-a", "d1")
	if out := bmi(alice, 0, "iscsi", "acl", "rm", "tenant-a", "d1", "iqn.2026-11.org.example:rescue"); strings.Contains(out, "rescue") {
		t.Fatalf("acl rm left the name:\n%s", out)
	}
	contains(bmi(alice, 0, "disk", "rotate-secret", "tenant-a", "d1"), "new CHAP secret")
	contains(bmi(admin, 0, "audit", "ls", "--kind", "api", "--actor", "alice"), "rotate-secret")
	bmi(alice, 1, "audit", "ls")
	bmi(alice, 1, "disk", "rm", "tenant-a", "d1")
	bmi(alice, 0, "boot", "clear", "tenant-a", "node-02")
	bmi(alice, 0, "disk", "rm", "tenant-a", "d1")

	// Upload and download through the real RBD store, sparse.
	dir := t.TempDir()
	data := make([]byte, 8<<20)
	copy(data[1<<20:], "hello from the uploaded image")
	src := filepath.Join(dir, "up.img")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	contains(bmi(alice, 0, "upload", "tenant-a", "up", src), "8 MiB")
	back := filepath.Join(dir, "back.img")
	bmi(alice, 0, "download", "tenant-a", "up", back)
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download differs from the upload (%v)", err)
	}

	// The legacy endpoints on the same daemon.
	legacy := func(method, path, form string, want int) string {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:alice-secret")))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, body, want)
		}
		return string(body)
	}
	f := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	contains(legacy("POST", "/list_images/", f("project", "tenant-a"), 200), `"debian"`)
	contains(legacy("PUT", "/provision/", f("project", "tenant-a", "node", "node-02", "img", "debian", "nic", "eth0"), 200), "Success")
	contains(legacy("PUT", "/create_snapshot/", f("project", "tenant-a", "node", "node-02", "snap_name", "snap2"), 200), "Success")
	contains(legacy("POST", "/list_snapshots/", f("project", "tenant-a"), 200), `["snap2", "debian"]`)
	contains(legacy("DELETE", "/deprovision/", f("project", "tenant-a", "node", "node-02", "nic", "eth0"), 200), "Success")
	contains(legacy("PUT", "/create_disk", f("project", "tenant-a", "disk_name", "d2", "img", "snap2"), 200), `"`+uid+"img")
	contains(legacy("PUT", "/create_disk", f("project", "tenant-a", "disk_name", "d2", "img", "snap2"), 409), "Disk exists. Endpoint:"+uid+"img")
	contains(legacy("DELETE", "/delete_disk", f("project", "tenant-a", "disk_name", "d2"), 200), "Success")
	contains(legacy("DELETE", "/remove_image/", f("project", "tenant-a", "img", "snap2"), 200), "Success")
	legacy("DELETE", "/remove_image/", f("project", "tenant-a", "img", "snap2"), 404)

	bmi(alice, 0, "snap", "rm", "tenant-a", "snap1")
	contains(bmi(admin, 0, "db", "ls"), "debian")
	contains(bmi(admin, 0, "op", "ls"), "provision")
	contains(bmi(admin, 0, "reconcile"), "fixed")
	bmi(admin, 1, "project", "rm", "tenant-a")
	bmi(admin, 0, "project", "rm", "tenant-a", "--force")
	bmi(admin, 0, "project", "rm", "tenant-b")
	if out, _ := cephtest.RBD(conf, pool, "ls"); strings.Contains(out, uid+"img") || strings.Contains(out, uid+"tmp") {
		t.Fatalf("BMI images left in the pool:\n%s", out)
	}
}
