package iscsi

import (
	"bytes"
	"fmt"
	"strings"
)

// keyValue is one "key=value" of a login or text data segment.
type keyValue struct {
	Key, Value string
}

// Limits of RFC 7143 §6.1: key names up to 63 bytes, values up to 255
// bytes except the few that may be longer (CHAP challenges and
// responses, SendTargets answers), which are bounded by maxTextLen.
const (
	maxKeyLen   = 63
	maxValueLen = 8192
	maxTextLen  = 64 * 1024
)

// parseText splits a text data segment into its key=value pairs, in order.
// It refuses malformed pairs, names or values that are too long, and a key
// that occurs twice.
func parseText(data []byte) ([]keyValue, error) {
	if len(data) > maxTextLen {
		return nil, fmt.Errorf("text of %d bytes is too long", len(data))
	}
	var kvs []keyValue
	seen := map[string]bool{}
	for _, field := range bytes.Split(data, []byte{0}) {
		if len(field) == 0 {
			continue // the trailing NUL, or padding
		}
		k, v, ok := strings.Cut(string(field), "=")
		if !ok {
			return nil, fmt.Errorf("text field %.40q has no '='", field)
		}
		if k == "" || len(k) > maxKeyLen || !validKeyName(k) {
			return nil, fmt.Errorf("invalid key name %.40q", k)
		}
		if len(v) > maxValueLen {
			return nil, fmt.Errorf("value of key %s is too long (%d bytes)", k, len(v))
		}
		if seen[k] {
			return nil, fmt.Errorf("key %s repeated", k)
		}
		seen[k] = true
		kvs = append(kvs, keyValue{k, v})
	}
	return kvs, nil
}

// validKeyName: letters, digits, '.', '-', '+', '@', '_' (RFC 7143 §6.1).
func validKeyName(k string) bool {
	for _, r := range k {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '.' || r == '-' || r == '+' || r == '@' || r == '_':
		default:
			return false
		}
	}
	return true
}

// marshalText encodes pairs as NUL-terminated key=value strings.
func marshalText(kvs []keyValue) []byte {
	var b bytes.Buffer
	for _, kv := range kvs {
		b.WriteString(kv.Key)
		b.WriteByte('=')
		b.WriteString(kv.Value)
		b.WriteByte(0)
	}
	return b.Bytes()
}
