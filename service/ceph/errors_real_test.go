//go:build ceph_preview

package ceph

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// TestRefusedOperations runs every error case against the real cluster and
// shows, by listing the test's images before and after, that a refused
// operation changes nothing.
func TestRefusedOperations(t *testing.T) {
	t.Parallel()
	s, p := newStore(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// fixture: base@s (protected) with clone kid; plain (no snapshots);
	// loose@u (unprotected); busy (held open)
	must(s.Create(ctx, p+"base", 8<<20))
	must(s.CreateSnapshot(ctx, p+"base", "s"))
	must(s.ProtectSnapshot(ctx, p+"base", "s"))
	must(s.Clone(ctx, p+"base", "s", p+"kid"))
	must(s.Create(ctx, p+"plain", 4<<20))
	must(s.Create(ctx, p+"loose", 4<<20))
	must(s.CreateSnapshot(ctx, p+"loose", "u"))
	must(s.Create(ctx, p+"busy", 4<<20))
	busy, err := s.Open(ctx, p+"busy")
	must(err)
	t.Cleanup(func() {
		_ = busy.Close()
		cleanup(t, s, p+"kid", p+"base", p+"plain", p+"loose", p+"busy")
	})

	tests := map[string]struct {
		op   func() error
		kind fault.Kind
		text string // the message names the objects
	}{
		"create existing":                {func() error { return s.Create(ctx, p+"plain", 1<<20) }, fault.Exists, "plain"},
		"create bad name":                {func() error { return s.Create(ctx, p+"a@b", 1<<20) }, fault.Invalid, "a@b"},
		"create size 0":                  {func() error { return s.Create(ctx, p+"zero", 0) }, fault.Invalid, "size"},
		"stat missing":                   {func() error { _, err := s.Stat(ctx, p+"nope"); return err }, fault.NotFound, "nope"},
		"open missing":                   {func() error { _, err := s.Open(ctx, p+"nope"); return err }, fault.NotFound, "nope"},
		"remove missing":                 {func() error { return s.Remove(ctx, p+"nope") }, fault.NotFound, "nope"},
		"remove image with snapshots":    {func() error { return s.Remove(ctx, p+"base") }, fault.Conflict, "has snapshots"},
		"remove open image":              {func() error { return s.Remove(ctx, p+"busy") }, fault.Conflict, "open"},
		"rename missing":                 {func() error { return s.Rename(ctx, p+"nope", p+"new") }, fault.NotFound, "nope"},
		"rename onto existing":           {func() error { return s.Rename(ctx, p+"plain", p+"loose") }, fault.Exists, "loose"},
		"rename to bad name":             {func() error { return s.Rename(ctx, p+"plain", "x y") }, fault.Invalid, "x y"},
		"snapshot twice":                 {func() error { return s.CreateSnapshot(ctx, p+"base", "s") }, fault.Exists, `"s"`},
		"snapshot of missing image":      {func() error { return s.CreateSnapshot(ctx, p+"nope", "s") }, fault.NotFound, "nope"},
		"snapshot bad name":              {func() error { return s.CreateSnapshot(ctx, p+"plain", "-x") }, fault.Invalid, "-x"},
		"list snapshots of missing":      {func() error { _, err := s.ListSnapshots(ctx, p+"nope"); return err }, fault.NotFound, "nope"},
		"protect missing snapshot":       {func() error { return s.ProtectSnapshot(ctx, p+"plain", "nosnap") }, fault.NotFound, "nosnap"},
		"unprotect snapshot with clones": {func() error { return s.UnprotectSnapshot(ctx, p+"base", "s") }, fault.Conflict, "has clones"},
		"remove protected snapshot":      {func() error { return s.RemoveSnapshot(ctx, p+"base", "s") }, fault.Conflict, "protected"},
		"remove missing snapshot":        {func() error { return s.RemoveSnapshot(ctx, p+"plain", "nosnap") }, fault.NotFound, "nosnap"},
		"clone unprotected snapshot":     {func() error { return s.Clone(ctx, p+"loose", "u", p+"c") }, fault.Invalid, "not protected"},
		"clone missing parent":           {func() error { return s.Clone(ctx, p+"nope", "s", p+"c") }, fault.NotFound, "nope"},
		"clone missing snapshot":         {func() error { return s.Clone(ctx, p+"base", "nosnap", p+"c") }, fault.NotFound, "nosnap"},
		"clone onto existing":            {func() error { return s.Clone(ctx, p+"base", "s", p+"plain") }, fault.Exists, "plain"},
		"flatten non-clone":              {func() error { return s.Flatten(ctx, p+"plain", nil) }, fault.Invalid, "no parent"},
		"flatten missing":                {func() error { return s.Flatten(ctx, p+"nope", nil) }, fault.NotFound, "nope"},
		"deep copy missing":              {func() error { return s.DeepCopy(ctx, p+"nope", p+"c") }, fault.NotFound, "nope"},
		"deep copy onto existing":        {func() error { return s.DeepCopy(ctx, p+"plain", p+"loose") }, fault.Exists, "loose"},
		"import onto existing": {func() error {
			return s.Import(ctx, p+"plain", bytes.NewReader(pattern(1<<20, 9)), 1<<20, nil)
		}, fault.Exists, "plain"},
		"import short stream": {func() error {
			return s.Import(ctx, p+"short", bytes.NewReader(pattern(1<<20, 9)), 2<<20, nil)
		}, fault.Invalid, "source ended"},
		"import long stream": {func() error {
			return s.Import(ctx, p+"long", bytes.NewReader(pattern(2<<20, 9)), 1<<20, nil)
		}, fault.Invalid, "longer"},
		"export missing":  {func() error { return s.Export(ctx, p+"nope", &bytes.Buffer{}, nil) }, fault.NotFound, "nope"},
		"list bad prefix": {func() error { _, err := s.List(ctx, "a/b"); return err }, fault.Invalid, "a/b"},
		"write past the end": {func() error {
			_, err := busy.WriteAt(make([]byte, 4096), 4<<20-100)
			return err
		}, fault.Invalid, "end of the image"},
		"discard past the end": {func() error { return busy.Discard(4<<20, 1) }, fault.Invalid, "end of the image"},
		"cancelled context": {func() error {
			c, cancel := context.WithCancel(ctx)
			cancel()
			return s.Create(c, p+"never", 1<<20)
		}, fault.Internal, "canceled"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := poolState(t, s, p)
			err := tc.op()
			if err == nil {
				t.Fatalf("no error; want %s", tc.kind)
			}
			if got := fault.Of(err); got != tc.kind {
				t.Fatalf("kind %s, want %s: %v", got, tc.kind, err)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("message %q does not contain %q", err, tc.text)
			}
			if after := poolState(t, s, p); after != before {
				t.Fatalf("pool changed by a refused operation:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func TestClosedAndNil(t *testing.T) {
	t.Parallel()
	s, p := newStore(t)
	ctx := context.Background()
	if err := s.Create(ctx, p+"img", 1<<20); err != nil {
		t.Fatal(err)
	}
	img, err := s.Open(ctx, p+"img")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	var nilStore *Store
	var nilImage *Image
	unavailable := map[string]error{
		"create on closed store":  s.Create(ctx, p+"x", 1<<20),
		"list on closed store":    func() error { _, err := s.List(ctx, ""); return err }(),
		"open on closed store":    func() error { _, err := s.Open(ctx, p+"img"); return err }(),
		"read closed by store":    func() error { _, err := img.ReadAt(make([]byte, 10), 0); return err }(),
		"write closed by store":   func() error { _, err := img.WriteAt(make([]byte, 10), 0); return err }(),
		"flush closed by store":   img.Flush(),
		"stat on nil store":       func() error { _, err := nilStore.Stat(ctx, "x"); return err }(),
		"import on nil store":     nilStore.Import(ctx, "x", bytes.NewReader(nil), 1, nil),
		"read on nil image":       func() error { _, err := nilImage.ReadAt(make([]byte, 1), 0); return err }(),
		"discard on nil image":    nilImage.Discard(0, 1),
		"flatten on closed store": s.Flatten(ctx, p+"img", nil),
	}
	for name, err := range unavailable {
		if fault.Of(err) != fault.Unavailable {
			t.Errorf("%s: %v (kind %s), want unavailable", name, err, fault.Of(err))
		}
	}
	if err := img.Close(); err != nil {
		t.Errorf("close of an image the store closed: %v", err)
	}
	if nilImage.Close() != nil || nilStore.Close() != nil || nilImage.Size() != 0 {
		t.Error("nil image/store methods misbehave")
	}
	// clean up with a fresh store
	s2, _ := newStore(t)
	if err := s2.Remove(ctx, p+"img"); err != nil {
		t.Fatal(err)
	}
}

func TestDialErrors(t *testing.T) {
	t.Parallel()
	conf, pool := clusterOf(t)
	ctx := context.Background()
	wrongKey := filepath.Join(t.TempDir(), "keyring")
	if out, err := exec.Command("ceph-authtool", "--create-keyring", wrongKey, "--gen-key", "-n", "client.admin").CombinedOutput(); err != nil {
		t.Fatalf("ceph-authtool: %v: %s", err, out)
	}
	tests := map[string]struct {
		cfg  Config
		kind fault.Kind
	}{
		"no conf":         {Config{Pool: pool, OpTimeout: time.Second}, fault.Invalid},
		"no timeout":      {Config{Conf: conf, Pool: pool}, fault.Invalid},
		"missing conf":    {Config{Conf: "/nonexistent/ceph.conf", Pool: pool, OpTimeout: time.Second}, fault.Invalid},
		"missing pool":    {Config{Conf: conf, Pool: "nopool", OpTimeout: 5 * time.Second}, fault.NotFound},
		"unknown user":    {Config{Conf: conf, ID: "nobody", Pool: pool, OpTimeout: 3 * time.Second}, fault.Invalid},
		"missing keyring": {Config{Conf: conf, Keyring: "/nonexistent/keyring", Pool: pool, OpTimeout: 3 * time.Second}, fault.Invalid},
		"wrong key":       {Config{Conf: conf, Keyring: wrongKey, Pool: pool, OpTimeout: 3 * time.Second}, fault.Unavailable},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := Dial(ctx, tc.cfg, logging.Discard())
			if err == nil {
				s.Close()
				t.Fatal("Dial succeeded")
			}
			if fault.Of(err) != tc.kind {
				t.Fatalf("kind %s, want %s: %v", fault.Of(err), tc.kind, err)
			}
		})
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Dial(c, Config{Conf: conf, Pool: pool, OpTimeout: time.Second}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with a cancelled context: %v", err)
	}
}
