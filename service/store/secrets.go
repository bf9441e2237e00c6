package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
)

// KeySize is the size of the secrets key: AES-256.
const KeySize = 32

// sealedPrefix marks a sealed secret in the database: "enc1:" and the
// base64 of a GCM nonce followed by the ciphertext.
const sealedPrefix = "enc1:"

// SetKey makes the store seal CHAP secrets with key (AES-256-GCM) when it
// writes them and open them when it reads them. Without a key, secrets are
// written in the clear and sealed ones cannot be read.
func (s *DB) SetKey(key []byte) error {
	if len(key) != KeySize {
		return fault.Errorf(fault.Invalid, "secrets key: %d bytes, want %d", len(key), KeySize)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return fault.Errorf(fault.Invalid, "secrets key: %v", err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return fault.Errorf(fault.Invalid, "secrets key: %v", err)
	}
	s.aead = g
	return nil
}

// seal encrypts a secret for the database ("" stays "").
func (s *DB) seal(plain string) (string, error) {
	if plain == "" || s.aead == nil {
		return plain, nil
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal secret: %w", err)
	}
	return sealedPrefix + base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plain), []byte("chap"))), nil
}

// open decrypts a secret read from the database; one written in the clear
// (before the key existed) is returned as it is.
func (s *DB) open(stored string) (string, error) {
	b64, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return stored, nil
	}
	if s.aead == nil {
		return "", fault.Errorf(fault.Internal, "a CHAP secret is encrypted and bmid has no secrets key")
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", fault.Errorf(fault.Internal, "a CHAP secret in the database is damaged")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], []byte("chap"))
	if err != nil {
		return "", fault.Errorf(fault.Internal, "a CHAP secret does not open with this secrets key: wrong key file?")
	}
	return string(plain), nil
}

// SealedSecrets counts the sealed and the clear CHAP secrets.
func (s *DB) SealedSecrets(ctx context.Context) (sealed, clear int, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN chap_secret LIKE 'enc1:%' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN chap_secret <> '' AND chap_secret NOT LIKE 'enc1:%' THEN 1 ELSE 0 END), 0)
		FROM targets`).Scan(&sealed, &clear)
	return sealed, clear, dbErr(err, "targets")
}

// SealAll seals every CHAP secret still in the clear (those written before
// the key existed); it returns how many.
func (s *DB) SealAll(ctx context.Context) (int, error) {
	if s.aead == nil {
		return 0, fault.Errorf(fault.Invalid, "seal secrets: no key")
	}
	ts, err := s.Targets(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range ts {
		var stored string
		if err := s.db.QueryRowContext(ctx, `SELECT chap_secret FROM targets WHERE disk_id = ?`, t.DiskID).Scan(&stored); err != nil {
			return n, dbErr(err, "targets")
		}
		if stored == "" || strings.HasPrefix(stored, sealedPrefix) {
			continue
		}
		if err := s.PutTarget(ctx, t); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// LoadKey reads the secrets key file, which must be a regular file of
// KeySize bytes that only its owner can read or write (mode 0600 or
// stricter). When the file does not exist and create is set, it is made
// with a new random key (mode 0600). Every failure is one line that names
// the file and what to do.
func LoadKey(path string, create bool) ([]byte, bool, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		key := make([]byte, KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, false, fmt.Errorf("secrets key %s: %w", path, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("secrets key %s: cannot create it: %w", path, err)
		}
		_, werr := f.Write(key)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			_ = os.Remove(path)
			return nil, false, fmt.Errorf("secrets key %s: %w", path, werr)
		}
		return key, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("secrets key %s: %w (the state database holds secrets sealed with it: restore the file)", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, false, fmt.Errorf("secrets key %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, false, fmt.Errorf("secrets key %s: mode %04o lets others read it; want 0600 (chmod 600 %s)", path, perm, path)
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("secrets key %s: cannot read it: %w", path, err)
	}
	if len(key) != KeySize {
		return nil, false, fmt.Errorf("secrets key %s: %d bytes, want %d", path, len(key), KeySize)
	}
	return key, false, nil
}
