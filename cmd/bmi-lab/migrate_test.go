package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the original's database

	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/vm"
)

// TestMigratedNodeBoots is the final proof of `bmid migrate-legacy`: in
// the lab, an original BMI site is built the original's way on the lab's
// Ceph (the lab's golden image copied into the pool and imported by the
// original's recipe under orig<img><id>, node-01 provisioned by its
// recipe: a clone, a tgt file, pxelinux and iPXE files, and the rows of
// its SQLite database), migrated into a new state database, and bmid is
// restarted on it; node-02 is provisioned from the migrated image (which
// gives the project its provisioning network), and node-01 (its NIC found
// in HIL by its MAC), put on that network, power cycles and boots from its
// migrated disk to the marker.
func TestMigratedNodeBoots(t *testing.T) {
	requireSite(t, map[string]string{"ceph-mgr": "ceph-mgr"})
	ctx := context.Background()
	cli, bin, dir := newSite(t, "cmig")
	l, creds := upLab(t, cli, "cmig", dir, "--nodes", "2")
	ceph, err := l.Ceph()
	if err != nil {
		t.Fatal(err)
	}
	user := apiCaller(t, lab.HILUser, creds.HILUser)
	admin := apiCaller(t, lab.HILAdmin, creds.HILAdmin)
	api, hil := l.APIURL()+"/api/v1/projects/"+lab.Project, l.HILURL()+"/v0"
	rbd := func(args ...string) {
		t.Helper()
		argv := append([]string{"netns", "exec", l.Namespace, "rbd", "--conf", ceph.ConfPath(), "--pool", ceph.Pool()}, args...)
		if out, err := exec.Command("ip", argv...).CombinedOutput(); err != nil {
			t.Fatalf("rbd %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// The original site: its golden image, imported and provisioned its way.
	const snap = "bmi-snap" // the original's [bmi] snapshot, as bmid's ceph.snapshot
	golden := user("GET", api+"/images/"+lab.GoldenImage, "", 200)["ceph_name"].(string)
	rbd("cp", golden, "orig-golden")
	rbd("snap", "create", "orig-golden@"+snap)
	rbd("snap", "protect", "orig-golden@"+snap)
	rbd("clone", "--image-feature", "layering", "orig-golden@"+snap, "origimg1")
	rbd("flatten", "origimg1")
	rbd("snap", "create", "origimg1@"+snap)
	rbd("snap", "protect", "origimg1@"+snap)
	rbd("snap", "unprotect", "orig-golden@"+snap)
	rbd("snap", "rm", "orig-golden@"+snap)
	rbd("clone", "--image-feature", "layering", "origimg1@"+snap, "origimg2")
	site := t.TempDir()
	pxe, tgt := filepath.Join(site, "tftpboot", "pxelinux.cfg"), filepath.Join(site, "tgt")
	for _, d := range []string{pxe, tgt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n1, err := l.Node("node-01")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		filepath.Join(tgt, "origimg2.conf"):                            "<target origimg2>\n    driver iscsi\n    bs-type rbd\n    backing-store rbd/origimg2\n</target>\n",
		filepath.Join(site, "tftpboot", "node-01.ipxe"):                "#!ipxe\n      set keep-san 1\n      ifconf --configurator=dhcp net2\n      sanboot --keep iscsi:10.10.10.1:tcp:3260:1:origimg2\n      boot\n",
		filepath.Join(pxe, "01-"+strings.ReplaceAll(n1.MAC, ":", "-")): "DEFAULT menu\n  PROMPT 0\n  TIMEOUT 30\n  ONTIMEOUT node-01\n\nLABEL node-01\n     MENU LABEL node-01\n     KERNEL ipxe.lkrn\n     INITRD node-01.ipxe\n",
		filepath.Join(site, "bmiconfig.cfg"): fmt.Sprintf("[bmi]\nuid = orig\nservice = False\nsnapshot = %s\n[db]\npath = %s\n[fs]\nid = admin\npool = %s\n[tftp]\npxelinux_path = %s/\nipxe_path = %s/\n",
			snap, filepath.Join(site, "bmi.db"), ceph.Pool(), pxe, filepath.Join(site, "tftpboot")),
	}
	for p, text := range files {
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", filepath.Join(site, "bmi.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE project (id INTEGER NOT NULL, name VARCHAR NOT NULL, PRIMARY KEY (id), UNIQUE (name));
		CREATE TABLE image (id INTEGER NOT NULL, name VARCHAR NOT NULL, is_public BOOLEAN NOT NULL, is_snapshot BOOLEAN NOT NULL,
			project_id INTEGER NOT NULL, parent_id INTEGER, PRIMARY KEY (id), UNIQUE (project_id, name));
		INSERT INTO project VALUES (1, 'bmi_infra'), (2, '` + lab.Project + `');
		INSERT INTO image VALUES (1, 'orig-golden', 0, 0, 2, NULL), (2, 'node-01', 0, 0, 2, 1);`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Migrate into a new state database and restart bmid on it.
	state := filepath.Join(dir, "bmid-migrated", "bmid.db")
	out, err := exec.Command("ip", "netns", "exec", l.Namespace, filepath.Join(bin, "bmid"), "migrate-legacy",
		"--config", filepath.Join(dir, "bmid.yaml"), "--set", "state.path="+state,
		"--legacy-config", filepath.Join(site, "bmiconfig.cfg"), "--tgt-dir", tgt).CombinedOutput()
	// bmid's HIL account named node-01's NIC by its MAC.
	if err != nil || !strings.Contains(string(out), `node "node-01" boots disk "node-01" of project "lab" (NIC "eth0", MAC `) ||
		strings.Contains(string(out), "its NIC is unknown") {
		t.Fatalf("migrate-legacy: %v\n%s", err, out)
	}
	t.Logf("migrate-legacy:\n%s", out)
	conf, err := os.ReadFile(filepath.Join(dir, "bmid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	old := "path: " + filepath.Join(dir, "bmid", "bmid.db")
	if !strings.Contains(string(conf), old) {
		t.Fatalf("bmid.yaml has no %q:\n%s", old, conf)
	}
	if err := os.WriteFile(filepath.Join(dir, "bmid.yaml"), []byte(strings.Replace(string(conf), old, "path: "+state, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RestartBmid(ctx, lab.RestartGraceful, ""); err != nil {
		t.Fatalf("restart bmid on the migrated state: %v", err)
	}
	// The lab gives each project a provisioning network of its own, at the
	// project's first provision: node-02, provisioned from the migrated
	// image, gives project lab its network. The original (V-B) left the
	// provisioning network to the operator: node-01's NIC goes onto the
	// project's network the same way.
	user("POST", api+"/nodes/node-02/provision", `{"image": "orig-golden", "nic": "eth0"}`, 201)
	var network string
	for _, n := range lab.ProjectNetworks {
		if strings.Contains(fmt.Sprint(admin("GET", hil+"/node/node-02", "", 200)["nics"]), n.Name) {
			network = n.Name
		}
	}
	if network == "" {
		t.Fatalf("provisioning node-02 put it on no project network: %v", admin("GET", hil+"/node/node-02", "", 200)["nics"])
	}
	admin("POST", hil+"/node/node-01/nic/eth0/connect_network", `{"network": "`+network+`", "channel": "vlan/native"}`, 202)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if strings.Contains(fmt.Sprint(admin("GET", hil+"/node/node-01", "", 200)["nics"]), network) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node-01 did not get onto its project's network %s", network)
		}
	}
	con := vm.Console{Path: n1.Serial}
	from, begin := con.Offset(), time.Now()
	user("POST", hil+"/node/node-01/power_cycle", "", 200)
	tl, err := con.Timeline(ctx, from, begin, vm.BootMilestones, 300*time.Second)
	if err != nil {
		b, _ := con.Tail(4000)
		t.Fatalf("the migrated node did not boot: %v\nconsole tail:\n%s", err, b)
	}
	mk, err := con.WaitFor(ctx, from, vm.BootedRE, time.Second)
	if err != nil || mk.Groups[1] != "node-01" || mk.Groups[2] != "ibft" {
		t.Fatalf("marker %v (%v); want node-01 ibft", mk.Groups, err)
	}
	t.Logf("node-01 booted from its migrated disk origimg2; timeline from power cycle: %v", tl)
}
