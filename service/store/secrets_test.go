package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/core"
)

// diskWithTarget makes a project, an image and a disk, and stores a
// target with secret for the disk; it returns the disk's id.
func diskWithTarget(t *testing.T, s *DB, secret string) int64 {
	t.Helper()
	ctx := context.Background()
	img, err := s.InsertImage(ctx, core.Image{Project: "p", Name: "deb", Kind: core.KindImage, State: core.StateReady}, "u1")
	if err != nil {
		t.Fatal(err)
	}
	disk, err := s.InsertImage(ctx, core.Image{Project: "p", Name: "d", Kind: core.KindDisk, ParentID: img.ID, State: core.StateReady}, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutTarget(ctx, core.Target{DiskID: disk.ID, IQN: "iqn.x:1", CHAPUser: "u", CHAPSecret: secret}); err != nil {
		t.Fatal(err)
	}
	return disk.ID
}

func rawSecret(t *testing.T, s *DB, id int64) string {
	t.Helper()
	var v string
	if err := s.db.QueryRowContext(context.Background(), `SELECT chap_secret FROM targets WHERE disk_id = ?`, id).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSecretsSealed(t *testing.T) { eachEngine(t, testSecretsSealed) }

func testSecretsSealed(t *testing.T, d testDB) {
	ctx := context.Background()
	s := d.open(t)
	if _, err := s.CreateProject(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	// A secret written before the key existed is in the clear...
	id := diskWithTarget(t, s, "old-secret-1234")
	key := bytes.Repeat([]byte{7}, KeySize)
	if err := s.SetKey(key); err != nil {
		t.Fatal(err)
	}
	if n, err := s.SealAll(ctx); err != nil || n != 1 {
		t.Fatalf("SealAll = %d, %v; want 1", n, err)
	}
	// ...and sealed afterwards; reads give the secret back.
	raw := rawSecret(t, s, id)
	if strings.Contains(raw, "old-secret") || !strings.HasPrefix(raw, sealedPrefix) {
		t.Fatalf("stored secret %q, want it sealed", raw)
	}
	if tg, err := s.Target(ctx, id); err != nil || tg.CHAPSecret != "old-secret-1234" {
		t.Fatalf("Target = %+v, %v", tg, err)
	}
	if sealed, clear, err := s.SealedSecrets(ctx); err != nil || sealed != 1 || clear != 0 {
		t.Fatalf("SealedSecrets = %d, %d, %v", sealed, clear, err)
	}
	// The same secret sealed twice differs (fresh nonce).
	tg, _ := s.Target(ctx, id)
	if err := s.PutTarget(ctx, tg); err != nil {
		t.Fatal(err)
	}
	if rawSecret(t, s, id) == raw {
		t.Error("resealing gave the same ciphertext")
	}
	s.Close()

	// Another key, or none, cannot read it.
	for name, k := range map[string][]byte{"wrong key": bytes.Repeat([]byte{8}, KeySize), "no key": nil} {
		s2 := d.open(t)
		if k != nil {
			if err := s2.SetKey(k); err != nil {
				t.Fatal(err)
			}
		}
		if tg, err := s2.Target(ctx, id); err == nil {
			t.Errorf("%s: Target = %+v, want an error", name, tg)
		}
		s2.Close()
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.key")
	key, created, err := LoadKey(fresh, true)
	if err != nil || !created || len(key) != KeySize {
		t.Fatalf("LoadKey(missing, create) = %d bytes, %v, %v", len(key), created, err)
	}
	if st, _ := os.Stat(fresh); st.Mode().Perm() != 0o600 {
		t.Fatalf("created key file mode %v, want 0600", st.Mode().Perm())
	}
	again, created, err := LoadKey(fresh, true)
	if err != nil || created || !bytes.Equal(again, key) {
		t.Fatalf("LoadKey(existing) = %v, %v; want the same key", created, err)
	}
	cases := map[string]struct {
		setup  func() string
		create bool
		want   string
	}{
		"missing, secrets exist": {func() string { return filepath.Join(dir, "gone.key") }, false, "restore the file"},
		"world readable": {func() string {
			p := filepath.Join(dir, "open.key")
			_ = os.WriteFile(p, key, 0o600)
			_ = os.Chmod(p, 0o644)
			return p
		}, true, "mode 0644"},
		"short": {func() string {
			p := filepath.Join(dir, "short.key")
			_ = os.WriteFile(p, key[:5], 0o600)
			return p
		}, true, "5 bytes"},
		"directory": {func() string { return dir }, true, "not a regular file"},
	}
	for name, tc := range cases {
		_, _, err := LoadKey(tc.setup(), tc.create)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: LoadKey = %v, want one line with %q", name, err, tc.want)
		}
	}
}
