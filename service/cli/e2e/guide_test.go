//go:build ceph_preview

package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/sitetest"
	"github.com/bmi-go/bmi/service/cli"
	"github.com/bmi-go/bmi/service/clikit"
	"github.com/bmi-go/bmi/service/config"
)

// TestUsersGuideWalkthrough runs the original User's Guide's walkthrough
// (chapter 2.3: rbd create, import, pro with the network, snap create,
// dpro with the network, snap rm, rm, rbd rm) command by command in the
// guide's own forms, against a real bmid on real Ceph that attaches nodes
// to the provisioning network through hil-mock. Names are the example
// site's (project tenant-a, node node-01, NIC eth0, network bmi-provision)
// instead of the guide's bmi_infra, bmi_node, bmi_port and bmi_network.
func TestUsersGuideWalkthrough(t *testing.T) {
	var b [3]byte
	_, _ = rand.Read(b[:])
	uid := "guide" + hex.EncodeToString(b[:])
	s := sitetest.Start(t, sitetest.Options{UID: uid, Configure: func(tb testing.TB, cfg *config.Config) {
		pw := filepath.Join(tb.TempDir(), "hil-password")
		if err := os.WriteFile(pw, []byte("bmi-secret\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
		cfg.HIL.ProvisioningNetwork, cfg.HIL.User, cfg.HIL.PasswordFile = "bmi-provision", "bmi", pw
	}})
	conf, pool := s.Config.Ceph.Conf, s.Config.Ceph.Pool
	image := uid + "-bmi-test-image"
	snapshot := image + "-snapshot"
	admin := map[string]string{"BMI_URL": s.URL, "HIL_USERNAME": "hiladmin", "HIL_PASSWORD": "admin-secret"}
	alice := map[string]string{"BMI_URL": s.URL, "HIL_USERNAME": "alice", "HIL_PASSWORD": "alice-secret"}
	bmi := func(env map[string]string, want int, line string) (string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		root := cli.NewRoot(cli.Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""), Getenv: func(k string) string { return env[k] }})
		args := strings.Fields(line)[1:] // the guide's line, "bmi" first
		if code := clikit.Run(context.Background(), root, args, &errb); code != want {
			t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", line, code, want, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	has := func(what, out, want string, yes bool) {
		t.Helper()
		if strings.Contains(out, want) != yes {
			t.Fatalf("%s: contains %q = %v, want %v:\n%s", what, want, !yes, yes, out)
		}
	}
	nicNetworks := func() string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.HILURL+"/v0/node/node-01", nil)
		req.SetBasicAuth("hiladmin", "admin-secret")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var n struct {
			NICs []struct {
				Label    string            `json:"label"`
				Networks map[string]string `json:"networks"`
			} `json:"nics"`
		}
		if err := json.NewDecoder(res.Body).Decode(&n); err != nil {
			t.Fatal(err)
		}
		for _, nic := range n.NICs {
			if nic.Label == "eth0" {
				var nets []string
				for _, v := range nic.Networks {
					nets = append(nets, v)
				}
				return strings.Join(nets, ",")
			}
		}
		return ""
	}

	// The guide's site has its project already (an admin inserted it).
	bmi(admin, 0, "bmi project create tenant-a")
	// 2.3.1: rbd create bmi-test-image --size 1 --image-format 2
	if out, err := cephtest.RBD(conf, pool, "create", image, "--size", "1", "--image-format", "2"); err != nil {
		t.Fatalf("rbd create: %v %s", err, out)
	}
	t.Cleanup(func() { cephtest.RBD(conf, pool, "rm", image) })
	// 2.3.2: bmi import bmi_infra bmi-test-image; bmi db ls; bmi ls bmi_infra
	bmi(admin, 0, "bmi import tenant-a "+image)
	out, _ := bmi(admin, 0, "bmi db ls")
	has("db ls", out, uid+"img", true)
	out, _ = bmi(alice, 0, "bmi ls tenant-a")
	has("ls", out, image, true)

	// A network other than the provisioning network: refused, naming it, nothing done.
	_, errs := bmi(alice, 1, "bmi pro tenant-a node-01 "+image+" tenant-a-net eth0")
	has("pro on another network", errs, `BMI provisions nodes on "bmi-provision"`, true)
	out, _ = bmi(alice, 0, "bmi showpro tenant-a")
	has("showpro after the refused pro", out, "node-01", false)

	// 2.3.3: bmi pro bmi_infra bmi_node bmi-test-image bmi_network bmi_port
	bmi(alice, 0, "bmi pro tenant-a node-01 "+image+" bmi-provision eth0")
	if nets := nicNetworks(); nets != "bmi-provision" {
		t.Fatalf("after pro, node-01's eth0 is on %q, want bmi-provision", nets)
	}
	out, _ = bmi(admin, 0, "bmi db ls --name node-01")
	has("db ls after pro", out, image, true)
	out, _ = bmi(alice, 0, "bmi showpro tenant-a")
	has("showpro", out, "node-01", true)
	has("showpro", out, image, true)
	// An external boot manager's view of the node's disk: the sanboot URI
	// (bmi disk sanboot), then a real iSCSI login from bmid's answers.
	out, _ = bmi(alice, 0, "bmi disk sanboot tenant-a node-01")
	has("disk sanboot", out, "iscsi:127.0.0.1::", true)
	inq := loginFromSanboot(t, s.URL, [2]string{"alice", "alice-secret"}, [2]string{"hiladmin", "admin-secret"}, "tenant-a", "node-01")
	has("iscsi-inq", inq, "Peripheral Device Type:DIRECT_ACCESS", true)

	// 2.3.4: bmi snap create bmi_infra bmi_node bmi-test-image-snapshot
	bmi(alice, 0, "bmi snap create tenant-a node-01 "+snapshot)
	out, _ = bmi(alice, 0, "bmi snap ls tenant-a")
	has("snap ls", out, snapshot, true)

	// 2.3.5: bmi dpro bmi_infra bmi_node bmi_network bmi_port
	_, errs = bmi(alice, 1, "bmi dpro tenant-a node-01 tenant-a-net eth0")
	has("dpro on another network", errs, `"bmi-provision"`, true)
	bmi(alice, 0, "bmi dpro tenant-a node-01 bmi-provision eth0")
	if nets := nicNetworks(); nets != "" {
		t.Fatalf("after dpro, node-01's eth0 is still on %q", nets)
	}
	out, _ = bmi(admin, 0, "bmi db ls --name node-01")
	has("db ls after dpro", out, "node-01", false)

	// 2.3.6: bmi snap rm bmi_infra bmi-test-image-snapshot
	bmi(alice, 0, "bmi snap rm tenant-a "+snapshot)
	// 2.3.7: bmi rm bmi_infra bmi-test-image; then rbd rm bmi-test-image
	bmi(alice, 0, "bmi rm tenant-a "+image)
	out, _ = bmi(admin, 0, "bmi db ls")
	has("db ls at the end", out, uid+"img", false)
	if out, err := cephtest.RBD(conf, pool, "rm", image); err != nil {
		t.Fatalf("rbd rm: %v %s", err, out)
	}
	if out, _ := cephtest.RBD(conf, pool, "ls"); strings.Contains(out, uid) {
		t.Fatalf("images left in the pool:\n%s", out)
	}
}
