package iscsi

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// CHAP holds one direction's CHAP credentials (RFC 1994 with MD5, as
// profiled by RFC 7143 §12.1.3).
type CHAP struct {
	// User is the CHAP name.
	User string
	// Secret is the shared secret (at least 12 bytes, per RFC 7143).
	Secret string
}

// minCHAPSecret is the shortest secret RFC 7143 §12.1.3 lets us accept.
const minCHAPSecret = 12

// chapLen is the length of our challenges.
const chapLen = 16

// chapResponse computes MD5(id || secret || challenge).
func chapResponse(id byte, secret string, challenge []byte) []byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write([]byte(secret))
	h.Write(challenge)
	return h.Sum(nil)
}

// chapVerify compares a received response with the expected one in
// constant time.
func chapVerify(id byte, secret string, challenge, response []byte) bool {
	return subtle.ConstantTimeCompare(chapResponse(id, secret, challenge), response) == 1
}

// newChallenge returns a fresh identifier and random challenge.
func newChallenge() (byte, []byte, error) {
	b := make([]byte, chapLen+1)
	if _, err := rand.Read(b); err != nil {
		return 0, nil, err
	}
	return b[0], b[1:], nil
}

// decodeBinary decodes a CHAP binary value: "0x" hex or "0b" base64.
func decodeBinary(s string) ([]byte, error) {
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		v := s[2:]
		if len(v)%2 == 1 {
			v = "0" + v
		}
		return hex.DecodeString(v)
	case len(s) > 2 && (s[:2] == "0b" || s[:2] == "0B"):
		return base64.StdEncoding.DecodeString(s[2:])
	}
	return nil, fmt.Errorf("binary value %.20q has neither 0x nor 0b prefix", s)
}

// encodeHex encodes b as a "0x" hex value.
func encodeHex(b []byte) string { return "0x" + hex.EncodeToString(b) }

// parseCHAPID parses CHAP_I (a decimal or hex number 0..255).
func parseCHAPID(s string) (byte, error) {
	base := 10
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s, base = s[2:], 16
	}
	v, err := strconv.ParseUint(s, base, 8)
	if err != nil {
		return 0, fmt.Errorf("bad CHAP_I %.10q", s)
	}
	return byte(v), nil
}
