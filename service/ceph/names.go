package ceph

import (
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
)

// MaxNameLen is the longest image or snapshot name BMI accepts. RBD allows
// longer names; BMI's own are "<uid>img<id>", and a short limit keeps
// object names, log lines and iSCSI target names readable.
const MaxNameLen = 64

// ValidateName checks an image or snapshot name (what says which, for the
// message) before any Ceph call: 1 to MaxNameLen characters from
// [A-Za-z0-9_.-], not starting with '.' or '-'. Ceph itself would accept
// names BMI refuses (spaces, '@' and '/' are not refused by every path in
// librbd); BMI refuses them all so that nothing it creates needs quoting in
// rbd commands, iSCSI names or URLs.
func ValidateName(what, name string) error {
	if name == "" {
		return fault.Errorf(fault.Invalid, "%s name is empty", what)
	}
	if len(name) > MaxNameLen {
		return fault.Errorf(fault.Invalid, "%s name %.20q... is %d characters long; at most %d are allowed", what, name, len(name), MaxNameLen)
	}
	if name[0] == '.' || name[0] == '-' {
		return fault.Errorf(fault.Invalid, "%s name %q must not start with %q", what, name, name[0])
	}
	for i := 0; i < len(name); i++ {
		if !nameChar(name[i]) {
			return fault.Errorf(fault.Invalid, "%s name %q: character %q at position %d is not allowed (letters, digits, '_', '.', '-')", what, name, rune(name[i]), i)
		}
	}
	return nil
}

// validatePrefix checks a List prefix: empty, or a valid name's beginning.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := ValidateName("prefix", prefix); err != nil {
		return fmt.Errorf("list images: %w", err)
	}
	return nil
}

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}
