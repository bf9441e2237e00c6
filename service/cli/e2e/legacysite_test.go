//go:build ceph_preview

package e2e_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the original's database, written as SQLAlchemy did

	"github.com/bmi-go/bmi/internal/cephtest"
)

// originalSchema is the DDL SQLAlchemy's create_all() issued for the
// original's declarative models (reference §6.1, V-B).
const originalSchema = `
CREATE TABLE project (
	id INTEGER NOT NULL,
	name VARCHAR NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (name)
);
CREATE TABLE image (
	id INTEGER NOT NULL,
	name VARCHAR NOT NULL,
	is_public BOOLEAN NOT NULL,
	is_snapshot BOOLEAN NOT NULL,
	project_id INTEGER NOT NULL,
	parent_id INTEGER,
	PRIMARY KEY (id),
	CONSTRAINT _project_id_image_name_unique_constraint UNIQUE (project_id, name),
	CHECK (is_public IN (0, 1)),
	CHECK (is_snapshot IN (0, 1)),
	FOREIGN KEY(project_id) REFERENCES project (id),
	FOREIGN KEY(parent_id) REFERENCES image (id)
);`

// originalSite is an original BMI site built for real: its database, its
// RBD images on the test cluster, its tgt and boot files.
type originalSite struct {
	t                  *testing.T
	conf, pool, uid    string
	snap               string
	dir, dbPath, ini   string
	tgtDir, pxe, ipxe  string
	db                 *sql.DB
	nextID             int64
	cephNames, goldens []string
}

// newOriginalSite makes the site's directories, its database with the
// original's schema and the admin project row the installer inserted.
func newOriginalSite(t *testing.T, conf, pool, uid string) *originalSite {
	dir := t.TempDir()
	o := &originalSite{t: t, conf: conf, pool: pool, uid: uid, snap: "bmi_created_snapshot", dir: dir,
		dbPath: filepath.Join(dir, "bmi.db"), tgtDir: filepath.Join(dir, "tgt"), pxe: filepath.Join(dir, "tftpboot", "pxelinux.cfg"),
		ipxe: filepath.Join(dir, "tftpboot"), nextID: 1}
	for _, d := range []string{o.tgtDir, o.pxe} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", o.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	o.db = db
	o.exec(originalSchema)
	o.exec(`INSERT INTO project VALUES (1, 'bmi_infra')`) // the installer's bootstrap row (V-B: 2 columns)
	o.ini = filepath.Join(dir, "bmiconfig.cfg")
	cfg := fmt.Sprintf(`[bmi]
uid = %s
service = False
snapshot = %s

[db]
path = %s

[fs]
id = admin
pool = %s
conf_file = %s
keyring = /etc/ceph/ceph.client.admin.keyring

[driver]
net_isolator = hil
iscsi = tgt
fs = ceph

[net_isolator]
url = http://127.0.0.1:7000

[iscsi]
ip = 10.10.10.1
password = sudo-password

[rpc]
name_server_ip = 127.0.0.1
name_server_port = 10000
rpc_server_ip = 127.0.0.1
rpc_server_port = 10001

[tftp]
pxelinux_path = %s/
ipxe_path = %s/

[rest_api]
ip = 127.0.0.1
port = 8000

[logs]
path = /var/log/bmi/
debug = False
verbose = False
`, uid, o.snap, o.dbPath, pool, conf, o.pxe, o.ipxe)
	if err := os.WriteFile(o.ini, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.purge)
	return o
}

func (o *originalSite) exec(q string, args ...any) {
	o.t.Helper()
	if _, err := o.db.Exec(q, args...); err != nil {
		o.t.Fatalf("%s: %v", q, err)
	}
}

func (o *originalSite) rbd(args ...string) {
	o.t.Helper()
	if out, err := cephtest.RBD(o.conf, o.pool, args...); err != nil {
		o.t.Fatalf("rbd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (o *originalSite) ceph(id int64) string { return fmt.Sprintf("%simg%d", o.uid, id) }

// row inserts an image row as the original's ImageRepository.insert did.
func (o *originalSite) row(project int64, name string, parent int64, snapshot bool) int64 {
	id := o.nextID
	o.nextID++
	var p any
	if parent != 0 {
		p = parent
	}
	o.exec(`INSERT INTO image (id, name, is_public, is_snapshot, project_id, parent_id) VALUES (?, ?, 0, ?, ?, ?)`, id, name, snapshot, project, p)
	o.cephNames = append(o.cephNames, o.ceph(id))
	return id
}

// importGolden is the original's `bmi import P G` (reference §5.2): snap
// and protect G@S, the row, clone G@S to <uid>img<id>, flatten, snap and
// protect it, then unprotect and remove G@S. data goes into G first.
func (o *originalSite) importGolden(project int64, golden string, data []byte) int64 {
	src := filepath.Join(o.dir, golden+".raw")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		o.t.Fatal(err)
	}
	o.rbd("import", "--image-format", "2", src, golden)
	o.goldens = append(o.goldens, golden)
	o.rbd("snap", "create", golden+"@"+o.snap)
	o.rbd("snap", "protect", golden+"@"+o.snap)
	id := o.row(project, golden, 0, false)
	n := o.ceph(id)
	o.rbd("clone", "--image-feature", "layering", golden+"@"+o.snap, n)
	o.rbd("flatten", n)
	o.rbd("snap", "create", n+"@"+o.snap)
	o.rbd("snap", "protect", n+"@"+o.snap)
	o.rbd("snap", "unprotect", golden+"@"+o.snap)
	o.rbd("snap", "rm", golden+"@"+o.snap)
	return id
}

// provision is V-B's `bmi pro P N I NIC` (§5.3): the row named after the
// node, the clone of the image's snapshot, its tgt file, then the iPXE
// script and the pxelinux file of the node's MAC.
func (o *originalSite) provision(project int64, node string, image int64, mac string) int64 {
	id := o.row(project, node, image, false)
	k := o.ceph(id)
	o.rbd("clone", "--image-feature", "layering", o.ceph(image)+"@"+o.snap, k)
	tgt := fmt.Sprintf("<target %s>\n    driver iscsi\n    bs-type rbd\n    backing-store %s/%s\n    bsopts \"conf=%s;id=admin\"\n    write-cache off\n    initiator-address ALL\n</target>\n",
		k, o.pool, k, o.conf)
	o.write(filepath.Join(o.tgtDir, k+".conf"), tgt, 0o644)
	o.bootFiles(node, node, k, mac)
	return id
}

func (o *originalSite) bootFiles(node, label, target, mac string) {
	o.write(filepath.Join(o.ipxe, node+".ipxe"), fmt.Sprintf("#!ipxe\n      set keep-san 1\n      ifconf --configurator=dhcp net2\n      sanboot --keep iscsi:10.10.10.1:tcp:3260:1:%s\n      boot\n", target), 0o755)
	o.write(filepath.Join(o.pxe, "01-"+strings.ReplaceAll(mac, ":", "-")), fmt.Sprintf("DEFAULT menu\n  PROMPT 0\n  MENU TITLE PXE Menu\n  TIMEOUT 30\n  ONTIMEOUT %s\n\nLABEL %s\n     MENU LABEL %s\n     KERNEL ipxe.lkrn\n     INITRD %s.ipxe\n", label, label, label, node), 0o644)
}

// snapshot is `bmi snap create P N SN` (§5.4): snap and protect the
// node's clone, the row (parent: the golden image), clone, flatten, snap
// and protect the copy, unprotect and remove the clone's snapshot.
func (o *originalSite) snapshot(project int64, disk, image int64, name string) int64 {
	k := o.ceph(disk)
	o.rbd("snap", "create", k+"@"+o.snap)
	o.rbd("snap", "protect", k+"@"+o.snap)
	id := o.row(project, name, image, true)
	m := o.ceph(id)
	o.rbd("clone", "--image-feature", "layering", k+"@"+o.snap, m)
	o.rbd("flatten", m)
	o.rbd("snap", "create", m+"@"+o.snap)
	o.rbd("snap", "protect", m+"@"+o.snap)
	o.rbd("snap", "unprotect", k+"@"+o.snap)
	o.rbd("snap", "rm", k+"@"+o.snap)
	return id
}

func (o *originalSite) write(path, text string, mode os.FileMode) {
	o.t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		o.t.Fatal(err)
	}
}

// purge removes whatever of the site's RBD images is left (children
// first), so a failing test leaves the pool clean too.
func (o *originalSite) purge() {
	for i := len(o.cephNames) - 1; i >= 0; i-- {
		n := o.cephNames[i]
		cephtest.RBD(o.conf, o.pool, "snap", "unprotect", n+"@"+o.snap)
		cephtest.RBD(o.conf, o.pool, "snap", "purge", n)
		cephtest.RBD(o.conf, o.pool, "rm", n)
	}
	for _, g := range o.goldens {
		cephtest.RBD(o.conf, o.pool, "snap", "purge", g)
		cephtest.RBD(o.conf, o.pool, "rm", g)
	}
}
