package core_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

func TestImportCopyMoveExportRemove(t *testing.T) {
	ctx := context.Background()
	e := seeded(t)
	im, err := e.db.Image(ctx, "tenant-a", "debian")
	if err != nil || im.CephName != uid+"img1" || im.Kind != core.KindImage || im.State != core.StateReady {
		t.Fatalf("imported row = %+v, %v", im, err)
	}
	if len(e.images.Images["golden"].Snaps) != 0 {
		t.Fatalf("import left snapshots on the source: %v", e.images.Images["golden"].SnapOrder)
	}
	if e.images.Images[im.CephName].Data != "debian-12" || e.images.Images[im.CephName].Parent != "" {
		t.Fatalf("imported image is not a flat copy: %+v", e.images.Images[im.CephName])
	}
	// Copy across projects (admin), then move back and rename: DB only.
	cp, err := e.svc.CopyImage(ctx, admin, "tenant-a", "debian", "tenant-b", "deb-copy")
	if err != nil || cp.Project != "tenant-b" || e.images.Images[cp.CephName].Data != "debian-12" {
		t.Fatalf("CopyImage = %+v, %v", cp, err)
	}
	mv, err := e.svc.MoveImage(ctx, admin, "tenant-b", "deb-copy", "tenant-a", "deb2")
	if err != nil || mv.CephName != cp.CephName || mv.Project != "tenant-a" {
		t.Fatalf("MoveImage = %+v, %v (the Ceph name must not change)", mv, err)
	}
	// Export to a new Ceph name that BMI then forgets.
	e.ok(e.svc.ExportImage(ctx, admin, "tenant-a", "deb2", "exported"))
	if x := e.images.Images["exported"]; x == nil || x.Data != "debian-12" || x.Parent != "" {
		t.Fatalf("exported image = %+v", x)
	}
	wantKind(t, e.svc.ExportImage(ctx, admin, "tenant-a", "deb2", "exported"), fault.Exists)
	// Import with an existing snapshot of the source, protected on request.
	e.ok(e.images.CreateSnapshot(ctx, "golden", "v1"))
	e.must(e.svc.ImportImage(ctx, admin, "tenant-b", "golden", core.ImportOptions{Name: "deb-v1", Snap: "v1", Protect: true}))
	if !e.images.Images["golden"].Snaps["v1"].Protected {
		t.Fatal("--protect did not protect the source snapshot")
	}
	e.ok(e.svc.RemoveImage(ctx, admin, "tenant-a", "deb2"))
	e.ok(e.svc.RemoveImage(ctx, admin, "tenant-b", "deb-v1"))
	e.ok(e.images.UnprotectSnapshot(ctx, "golden", "v1"))
	e.ok(e.images.RemoveSnapshot(ctx, "golden", "v1"))
	e.checkConsistent()
	list, err := e.svc.ListImages(ctx, alice, "tenant-a")
	if err != nil || len(list) != 1 || list[0].Name != "debian" {
		t.Fatalf("ListImages = %+v, %v", list, err)
	}
	if _, ok := e.images.Images["golden"]; !ok {
		t.Fatal("BMI removed a golden image it does not own")
	}
}

func TestProvisionSnapshotBootsAnotherNode(t *testing.T) {
	ctx := context.Background()
	e := seeded(t)
	d1, err := e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0")
	if err != nil || d1.Target == nil || len(d1.Nodes) != 1 {
		t.Fatalf("Provision = %+v, %v", d1, err)
	}
	// The node writes its state record to its disk.
	e.images.Images[d1.CephName].Data = "debian-12 + node1 record"
	snap, err := e.svc.CreateSnapshot(ctx, alice, "tenant-a", "node1", "node1-snap")
	if err != nil || snap.Kind != core.KindSnapshot || snap.Parent != "debian" {
		t.Fatalf("CreateSnapshot = %+v, %v", snap, err)
	}
	d2, err := e.svc.Provision(ctx, alice, "tenant-a", "node2", "node1-snap", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.images.Images[d2.CephName].Data; got != "debian-12 + node1 record" {
		t.Fatalf("node2's disk holds %q, want node1's record", got)
	}
	b, tg, err := e.svc.BootTarget(ctx, "52-54-00-00-00-02")
	if err != nil || b.Node != "node2" || tg.IQN != core.IQN("iqn.2026-11.org.bmi", uid, d2.ID) {
		t.Fatalf("BootTarget = %+v %+v %v", b, tg, err)
	}
	e.checkConsistent()
	// Provisioning twice is a conflict, not a race; so is removing an image with disks.
	_, err = e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0")
	wantKind(t, err, fault.Conflict)
	wantKind(t, e.svc.RemoveImage(ctx, alice, "tenant-a", "debian"), fault.Conflict)
	e.ok(e.svc.Deprovision(ctx, alice, "tenant-a", "node2", "eth0"))
	e.ok(e.svc.RemoveImage(ctx, alice, "tenant-a", "node1-snap"))
	e.ok(e.svc.Deprovision(ctx, alice, "tenant-a", "node1", "eth0"))
	if _, _, err := e.svc.BootTarget(ctx, "52:54:00:00:00:01"); fault.Of(err) != fault.NotFound {
		t.Fatalf("deprovisioned node still netboots: %v", err)
	}
	e.ok(e.svc.RemoveImage(ctx, alice, "tenant-a", "debian"))
	e.checkConsistent()
	if len(e.exp.Targets) != 0 || len(e.images.Images) != 1 {
		t.Fatalf("left behind: targets %v, images %v", e.exp.Targets, e.images.Images)
	}
}

func TestDisksAndBootSwitching(t *testing.T) {
	ctx := context.Background()
	e := seeded(t)
	e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "disk-a"))
	e.must(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "disk-b"))
	b, err := e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "disk-a")
	if err != nil || b.Disk != "disk-a" || b.MAC != "52:54:00:00:00:01" {
		t.Fatalf("SetBoot = %+v, %v", b, err)
	}
	wantKind(t, e.svc.DeleteDisk(ctx, alice, "tenant-a", "disk-a"), fault.Conflict)
	b, err = e.svc.SetBoot(ctx, alice, "tenant-a", "node1", "eth0", "disk-b")
	if err != nil || b.Disk != "disk-b" {
		t.Fatalf("switch = %+v, %v", b, err)
	}
	e.ok(e.svc.DeleteDisk(ctx, alice, "tenant-a", "disk-a"))
	disks, err := e.svc.ListDisks(ctx, alice, "tenant-a")
	if err != nil || len(disks) != 1 || disks[0].Nodes[0] != "node1" {
		t.Fatalf("ListDisks = %+v, %v", disks, err)
	}
	// Deprovision of a node whose disk it does not own only clears the boot config.
	e.ok(e.svc.Deprovision(ctx, alice, "tenant-a", "node1", ""))
	if _, err := e.db.Image(ctx, "tenant-a", "disk-b"); err != nil {
		t.Fatalf("deprovision deleted a disk made by disk create: %v", err)
	}
	e.ok(e.svc.DeleteDisk(ctx, alice, "tenant-a", "disk-b"))
	e.checkConsistent()
}

func TestUploadDownload(t *testing.T) {
	ctx := context.Background()
	e := seeded(t)
	im, err := e.svc.UploadImage(ctx, alice, "tenant-a", "up", strings.NewReader("raw-bytes"), 9)
	if err != nil || im.State != core.StateReady {
		t.Fatalf("UploadImage = %+v, %v", im, err)
	}
	var buf bytes.Buffer
	if _, err := e.svc.DownloadImage(ctx, alice, "tenant-a", "up", &buf, nil); err != nil || buf.String() != "raw-bytes" {
		t.Fatalf("DownloadImage = %q, %v", buf.String(), err)
	}
	e.images.Fail["Import"] = fault.Errorf(fault.Unavailable, "cluster gone")
	_, err = e.svc.UploadImage(ctx, alice, "tenant-a", "up2", strings.NewReader("x"), 1)
	wantKind(t, err, fault.Unavailable)
	delete(e.images.Fail, "Import")
	e.checkConsistent()
}

func TestFailuresRollBack(t *testing.T) {
	tests := map[string]struct {
		method string
		run    func(e *env) error
	}{
		"import flatten": {"Flatten", func(e *env) error {
			_, err := e.svc.ImportImage(context.Background(), admin, "tenant-b", "golden", core.ImportOptions{Name: "x"})
			return err
		}},
		"copy clone": {"Clone", func(e *env) error {
			_, err := e.svc.CopyImage(context.Background(), admin, "tenant-a", "debian", "tenant-b", "")
			return err
		}},
		"provision clone": {"Clone", func(e *env) error {
			_, err := e.svc.Provision(context.Background(), alice, "tenant-a", "node1", "debian", "eth0")
			return err
		}},
		"snapshot flatten": {"Flatten", func(e *env) error { return e.snapAfterProvision() }},
		"create disk clone": {"Clone", func(e *env) error {
			_, err := e.svc.CreateDisk(context.Background(), alice, "tenant-a", "debian", "d")
			return err
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := seeded(t)
			if name == "snapshot flatten" {
				e.must(e.svc.Provision(context.Background(), alice, "tenant-a", "node1", "debian", "eth0"))
			}
			before := e.state()
			e.images.Fail[tc.method] = fault.Errorf(fault.Unavailable, "injected %s failure", tc.method)
			err := tc.run(e)
			wantKind(t, err, fault.Unavailable)
			delete(e.images.Fail, tc.method)
			if after := e.state(); after != before {
				t.Fatalf("a failed operation left traces:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			e.checkConsistent()
			ops, _ := e.db.Ops(context.Background(), core.OpRolledBack, 0)
			if len(ops) != 1 || !strings.Contains(ops[0].Error, "injected") {
				t.Fatalf("rolled-back operations = %+v", ops)
			}
		})
	}
	t.Run("export failure during target creation", func(t *testing.T) {
		e := seeded(t)
		before := e.state()
		e.exp.Fail = fault.Errorf(fault.Unavailable, "target down")
		_, err := e.svc.Provision(context.Background(), alice, "tenant-a", "node1", "debian", "eth0")
		wantKind(t, err, fault.Unavailable)
		e.exp.Fail = nil
		if after := e.state(); after != before {
			t.Fatalf("left traces:\n%s\nvs\n%s", before, after)
		}
	})
}

func (e *env) snapAfterProvision() error {
	_, err := e.svc.CreateSnapshot(context.Background(), alice, "tenant-a", "node1", "s1")
	return err
}

func TestBadInputChangesNothing(t *testing.T) {
	ctx := context.Background()
	e := seeded(t)
	e.must(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0"))
	before := e.state()
	tests := map[string]struct {
		err  error
		kind fault.Kind
	}{
		"bad image name":      {second(e.svc.CopyImage(ctx, alice, "tenant-a", "debian", "tenant-a", "bad/name")), fault.Invalid},
		"newline in name":     {second(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "a\nb")), fault.Invalid},
		"long name":           {second(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", strings.Repeat("x", 65))), fault.Invalid},
		"unknown image":       {second(e.svc.Provision(ctx, alice, "tenant-a", "node2", "nope", "eth0")), fault.NotFound},
		"unknown node":        {second(e.svc.Provision(ctx, alice, "tenant-a", "node9", "debian", "eth0")), fault.NotFound},
		"unknown nic":         {second(e.svc.Provision(ctx, alice, "tenant-a", "node2", "debian", "eth9")), fault.NotFound},
		"provision twice":     {second(e.svc.Provision(ctx, alice, "tenant-a", "node1", "debian", "eth0")), fault.Conflict},
		"duplicate disk":      {second(e.svc.CreateDisk(ctx, alice, "tenant-a", "debian", "node1")), fault.Exists},
		"duplicate copy":      {second(e.svc.CopyImage(ctx, alice, "tenant-a", "debian", "tenant-a", "debian")), fault.Exists},
		"remove with clones":  {e.svc.RemoveImage(ctx, alice, "tenant-a", "debian"), fault.Conflict},
		"remove unknown":      {e.svc.RemoveImage(ctx, alice, "tenant-a", "nope"), fault.NotFound},
		"deprovision free":    {e.svc.Deprovision(ctx, alice, "tenant-a", "node2", "eth0"), fault.NotFound},
		"deprovision bad nic": {e.svc.Deprovision(ctx, alice, "tenant-a", "node1", "eth1"), fault.Invalid},
		"unknown project":     {second(e.svc.ListImages(ctx, admin, "nope")), fault.NotFound},
		"project with images": {e.svc.RemoveProject(ctx, admin, "tenant-a", false), fault.Conflict},
		"duplicate project":   {second(e.svc.CreateProject(ctx, admin, "tenant-a")), fault.Exists},
		"import bmi name":     {second(e.svc.ImportImage(ctx, admin, "tenant-a", uid+"img1", core.ImportOptions{Name: "z"})), fault.Invalid},
		"import missing":      {second(e.svc.ImportImage(ctx, admin, "tenant-a", "absent", core.ImportOptions{})), fault.NotFound},
		"snapshot of image":   {second(e.svc.CreateSnapshot(ctx, alice, "tenant-a", "debian", "s")), fault.Invalid},
		"node ip no lease":    {second(e.svc.NodeIP(ctx, alice, "tenant-a", "node1", "eth0")), fault.NotFound},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { wantKind(t, tc.err, tc.kind) })
	}
	if after := e.state(); after != before {
		t.Fatalf("bad input changed state:\n%s\nvs\n%s", before, after)
	}
	e.ok(e.svc.RemoveProject(ctx, admin, "tenant-a", true))
	e.checkConsistent()
	if n, _ := e.db.CountImages(ctx, "tenant-a"); n != 0 {
		t.Fatalf("forced project removal left %d rows", n)
	}
}

func second[T any](_ T, err error) error { return err }

func TestAuthorizationMatrix(t *testing.T) {
	ctx := context.Background()
	type call func(e *env, who core.Principal) error
	ops := map[string]struct {
		call    call
		admin   bool // admin-only
		mutates bool // changes state when allowed
	}{
		"list images": {call: func(e *env, w core.Principal) error { return second(e.svc.ListImages(ctx, w, "tenant-a")) }},
		"list snaps":  {call: func(e *env, w core.Principal) error { return second(e.svc.ListSnapshots(ctx, w, "tenant-a")) }},
		"list disks":  {call: func(e *env, w core.Principal) error { return second(e.svc.ListDisks(ctx, w, "tenant-a")) }},
		"copy": {mutates: true, call: func(e *env, w core.Principal) error {
			return second(e.svc.CopyImage(ctx, w, "tenant-a", "debian", "tenant-a", "c"))
		}},
		"move": {mutates: true, call: func(e *env, w core.Principal) error {
			return second(e.svc.MoveImage(ctx, w, "tenant-a", "debian", "tenant-a", "deb"))
		}},
		"remove": {mutates: true, call: func(e *env, w core.Principal) error { return e.svc.RemoveImage(ctx, w, "tenant-a", "debian") }},
		"provision": {mutates: true, call: func(e *env, w core.Principal) error {
			return second(e.svc.Provision(ctx, w, "tenant-a", "node1", "debian", "eth0"))
		}},
		"create disk": {mutates: true, call: func(e *env, w core.Principal) error {
			return second(e.svc.CreateDisk(ctx, w, "tenant-a", "debian", "d"))
		}},
		"upload": {mutates: true, call: func(e *env, w core.Principal) error {
			return second(e.svc.UploadImage(ctx, w, "tenant-a", "u", strings.NewReader("x"), 1))
		}},
		"targets": {call: func(e *env, w core.Principal) error { return second(e.svc.ListTargets(ctx, w, "tenant-a")) }},
		"import": {mutates: true, admin: true, call: func(e *env, w core.Principal) error {
			return second(e.svc.ImportImage(ctx, w, "tenant-a", "golden", core.ImportOptions{Name: "g2"}))
		}},
		"export":        {mutates: true, admin: true, call: func(e *env, w core.Principal) error { return e.svc.ExportImage(ctx, w, "tenant-a", "debian", "out") }},
		"project ls":    {admin: true, call: func(e *env, w core.Principal) error { return second(e.svc.ListProjects(ctx, w)) }},
		"project add":   {mutates: true, admin: true, call: func(e *env, w core.Principal) error { return second(e.svc.CreateProject(ctx, w, "p9")) }},
		"project rm":    {mutates: true, admin: true, call: func(e *env, w core.Principal) error { return e.svc.RemoveProject(ctx, w, "tenant-b", false) }},
		"db ls":         {admin: true, call: func(e *env, w core.Principal) error { return second(e.svc.DBList(ctx, w, core.ImageFilter{})) }},
		"all targets":   {admin: true, call: func(e *env, w core.Principal) error { return second(e.svc.ListTargets(ctx, w, "")) }},
		"reconcile":     {admin: true, call: func(e *env, w core.Principal) error { return second(e.svc.Reconcile(ctx, w, false)) }},
		"operations ls": {admin: true, call: func(e *env, w core.Principal) error { return second(e.svc.Ops(ctx, w, "", 10)) }},
	}
	whos := map[string]struct {
		who  core.Principal
		want func(adminOnly bool) fault.Kind
	}{
		"member":        {alice, func(a bool) fault.Kind { return map[bool]fault.Kind{true: fault.Forbidden, false: ""}[a] }},
		"other project": {bob, func(bool) fault.Kind { return fault.Forbidden }},
		"admin":         {admin, func(bool) fault.Kind { return "" }},
		"admin project": {infra, func(bool) fault.Kind { return "" }},
		"anonymous":     {anon, func(bool) fault.Kind { return fault.Unauthenticated }},
	}
	for opName, op := range ops {
		for whoName, w := range whos {
			t.Run(opName+"/"+whoName, func(t *testing.T) {
				e := seeded(t)
				before, beforeDB := e.state(), e.tables()
				err := op.call(e, w.who)
				want := w.want(op.admin)
				if opName == "provision" && whoName == "admin project" {
					// BMI lets the admin project act anywhere, but HIL itself
					// hides other projects' nodes from a non-admin user.
					want = fault.Forbidden
				}
				if fault.Of(err) != want {
					t.Fatalf("%s as %s: error %v (kind %q), want kind %q", opName, whoName, err, fault.Of(err), want)
				}
				if want != "" && (e.state() != before || e.tables() != beforeDB) {
					t.Fatalf("%s as %s was refused but changed state", opName, whoName)
				}
			})
		}
		if op.mutates {
			// The digests would see the call act: a refused call that still
			// acted fails the row above (the mutation check of each row).
			t.Run(opName+"/digest sees it act", func(t *testing.T) {
				e := seeded(t)
				before, beforeDB := e.state(), e.tables()
				if err := op.call(e, admin); err != nil {
					t.Fatalf("%s as admin: %v", opName, err)
				}
				if e.state() == before && e.tables() == beforeDB {
					t.Fatalf("%s acted but neither digest changed", opName)
				}
				if op.admin && e.state() == before {
					t.Fatalf("%s acted but the state digest did not change", opName)
				}
			})
		}
	}
}
