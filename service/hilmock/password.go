package hilmock

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Passwords are stored as "pbkdf2-sha256$<iterations>$<salt>$<key>" (salt
// and key in unpadded base64), the standard library's PBKDF2 with a 16-byte
// random salt and a 32-byte key. HIL itself uses sha512_crypt; hil-mock
// never reads HIL's database, so only the property matters: no plain text
// at rest.
const hashScheme = "pbkdf2-sha256"

// hashIterations is the PBKDF2 work factor of new hashes. Tests lower it.
var hashIterations = 100_000

// HashPassword returns the stored form of password.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, hashIterations, 32)
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", hashScheme, hashIterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// CheckPasswordHash reports whether hash is a password hash hil-mock can
// verify.
func CheckPasswordHash(hash string) error {
	_, _, _, err := parseHash(hash)
	return err
}

func parseHash(hash string) (iter int, salt, key []byte, err error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 4 || parts[0] != hashScheme {
		return 0, nil, nil, fmt.Errorf("password hash: want %s$<iterations>$<salt>$<key>", hashScheme)
	}
	iter, err = strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return 0, nil, nil, fmt.Errorf("password hash: bad iteration count %q", parts[1])
	}
	enc := base64.RawStdEncoding
	salt, err = enc.DecodeString(parts[2])
	if err != nil || len(salt) < 8 {
		return 0, nil, nil, fmt.Errorf("password hash: bad salt")
	}
	key, err = enc.DecodeString(parts[3])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return 0, nil, nil, fmt.Errorf("password hash: bad key")
	}
	return iter, salt, key, nil
}

// verifyPassword reports whether password matches hash.
func verifyPassword(hash, password string) bool {
	iter, salt, key, err := parseHash(hash)
	if err != nil {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(key))
	return err == nil && subtle.ConstantTimeCompare(got, key) == 1
}
