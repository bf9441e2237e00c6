package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/apiserver/apitest"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

func setup(t *testing.T, user, pw string) (*apitest.Env, *client.Client) {
	t.Helper()
	e, err := apitest.New(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c, err := client.New(e.Server.URL, user, logging.Secret(pw))
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

// TestErrorRoundTrip: every kind the server answers comes back as its
// sentinel, with the server's message.
func TestErrorRoundTrip(t *testing.T) {
	ctx := context.Background()
	_, alice := setup(t, apitest.AliceUser, apitest.AlicePassword)
	cases := map[string]struct {
		call func() error
		want error
		msg  string
	}{
		"not found":  {func() error { _, err := alice.Image(ctx, "tenant-a", "nope"); return err }, fault.ErrNotFound, "nope"},
		"forbidden":  {func() error { _, err := alice.Images(ctx, "tenant-b"); return err }, fault.ErrForbidden, "tenant-b"},
		"invalid":    {func() error { _, err := alice.Images(ctx, "-bad"); return err }, fault.ErrInvalid, "project name"},
		"admin only": {func() error { _, err := alice.Projects(ctx); return err }, fault.ErrForbidden, "administrator"},
		"exists": {func() error {
			_, _, err := alice.Copy(ctx, "tenant-a", "debian", api.CopyRequest{DestProject: "tenant-a"}, false)
			return err
		}, fault.ErrExists, "debian"},
		"conflict": {func() error {
			if _, _, err := alice.CreateDisk(ctx, "tenant-a", api.CreateDiskRequest{Image: "debian", Name: "d1"}, false); err != nil {
				return err
			}
			if _, err := alice.SetBoot(ctx, "tenant-a", "node1", api.SetBootRequest{Disk: "d1", NIC: "eth0"}); err != nil {
				return err
			}
			return alice.DeleteDisk(ctx, "tenant-a", "d1")
		}, fault.ErrConflict, "node1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v (%T) is not %v", err, err, tc.want)
			}
			var ae *api.Error
			if !errors.As(err, &ae) || !strings.Contains(ae.Message, tc.msg) {
				t.Fatalf("error %v lacks %q", err, tc.msg)
			}
		})
	}
	_, wrong := setup(t, apitest.AliceUser, "nope")
	if _, err := wrong.Images(ctx, "tenant-a"); !errors.Is(err, fault.ErrUnauthenticated) {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestNonJSONErrors: plain answers (a proxy's, the legacy routes') still
// map to kinds by status, and an unreachable server is unavailable.
func TestNonJSONErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL, "u", "p")
	if _, err := c.Projects(context.Background()); !errors.Is(err, fault.ErrUnavailable) {
		t.Fatalf("502: %v", err)
	}
	srv.Close()
	if _, err := c.Projects(context.Background()); !errors.Is(err, fault.ErrUnavailable) {
		t.Fatalf("closed server: %v", err)
	}
	for _, bad := range []string{"", "ftp://x", "localhost:8080", "http://"} {
		if _, err := client.New(bad, "u", "p"); !errors.Is(err, fault.ErrInvalid) {
			t.Errorf("New(%q): %v", bad, err)
		}
	}
}

// TestLifecycle uses the typed calls end to end.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	e, admin := setup(t, apitest.AdminUser, apitest.AdminPassword)
	if _, err := admin.CreateProject(ctx, "tenant-c"); err != nil {
		t.Fatal(err)
	}
	e.CephImage("golden2", "ubuntu", 1<<20)
	op, err := func() (string, error) {
		_, op, err := admin.Import(ctx, "tenant-c", api.ImportRequest{Source: "golden2", Name: "ubuntu"}, true)
		return op, err
	}()
	if err != nil || op == "" {
		t.Fatalf("async import: %q %v", op, err)
	}
	var seen []float64
	done, err := admin.WaitOp(ctx, op, 10*time.Millisecond, func(o api.Operation) { seen = append(seen, o.Progress) })
	if err != nil || done.State != api.OpDone || len(seen) == 0 {
		t.Fatalf("wait: %+v %v", done, err)
	}
	im, err := admin.Image(ctx, "tenant-c", "ubuntu")
	if err != nil || im.Kind != "image" {
		t.Fatalf("image %+v %v", im, err)
	}
	d, op, err := admin.Provision(ctx, "tenant-a", "node1", api.ProvisionRequest{Image: "debian", NIC: "eth0"}, false)
	if err != nil || d.Target == nil || op == "" {
		t.Fatalf("provision %+v %q %v", d, op, err)
	}
	b, err := admin.Boot(ctx, "tenant-a", "node1")
	if err != nil || b.Disk != "node1" {
		t.Fatalf("boot %+v %v", b, err)
	}
	if _, _, err := admin.CreateSnapshot(ctx, "tenant-a", api.CreateSnapshotRequest{Disk: "node1", Name: "s1"}, false); err != nil {
		t.Fatal(err)
	}
	if err := admin.Deprovision(ctx, "tenant-a", "node1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := admin.RemoveSnapshot(ctx, "tenant-a", "s1"); err != nil {
		t.Fatal(err)
	}
	ops, err := admin.Ops(ctx, api.OpDone, 100)
	if err != nil || len(ops) < 4 {
		t.Fatalf("ops %d %v", len(ops), err)
	}
	if _, err := admin.Reconcile(ctx, false); err != nil {
		t.Fatal(err)
	}
	rows, err := admin.DBImages(ctx, client.DBFilter{Project: "tenant-c"})
	if err != nil || len(rows) != 1 {
		t.Fatalf("db rows %v %v", rows, err)
	}
	// Upload and download round trip.
	data := bytes.Repeat([]byte("bmi"), 5000)
	up, op, err := admin.Upload(ctx, "tenant-c", "up", bytes.NewReader(data), int64(len(data)))
	if err != nil || up.Size != uint64(len(data)) || op == "" {
		t.Fatalf("upload %+v %v", up, err)
	}
	rc, size, err := admin.Download(ctx, "tenant-c", "up")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if size != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("download: %d bytes of %d", len(got), size)
	}
	if _, _, err := admin.Download(ctx, "tenant-c", "nope"); !errors.Is(err, fault.ErrNotFound) {
		t.Fatalf("download missing: %v", err)
	}
	if err := admin.RemoveProject(ctx, "tenant-c", true); err != nil {
		t.Fatal(err)
	}
}
