package core

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
)

// MaxNameLen bounds every user-visible name.
const MaxNameLen = 64

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
var nodeRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

// ValidateName checks an image, snapshot, disk or project name: 1 to 64
// characters, letters, digits, '.', '_' and '-', starting with a letter or
// digit. what names the argument in the error ("image name").
func ValidateName(what, s string) error {
	return validate(what, s, nameRe, "letters, digits, '.', '_' or '-'")
}

// ValidateNode checks a HIL node or NIC name: as ValidateName, and ':' is
// allowed too.
func ValidateNode(what, s string) error {
	return validate(what, s, nodeRe, "letters, digits, '.', '_', ':' or '-'")
}

func validate(what, s string, re *regexp.Regexp, allowed string) error {
	switch {
	case s == "":
		return fault.Errorf(fault.Invalid, "%s is empty", what)
	case len(s) > MaxNameLen:
		return fault.Errorf(fault.Invalid, "%s %.20q… is longer than %d characters", what, s, MaxNameLen)
	case !re.MatchString(s):
		return fault.Errorf(fault.Invalid, "%s %q: use %s, starting with a letter or digit", what, s, allowed)
	}
	return nil
}

// CephName is the RBD name of a BMI-owned row: "<uid>img<id>", as the
// original, so renames and moves never touch Ceph and several BMIs with
// different uids share a pool.
func CephName(uid string, id int64) string { return uid + "img" + strconv.FormatInt(id, 10) }

// CephPrefix is the prefix of every RBD name this BMI owns.
func CephPrefix(uid string) string { return uid + "img" }

// IDFromCephName returns the row id of a BMI-owned RBD name, or false.
func IDFromCephName(uid, name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, CephPrefix(uid))
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != rest {
		return 0, false
	}
	return id, true
}

// IQN is the iSCSI name of a disk's target: "<prefix>:<uid>.<disk id>",
// lower-cased as RFC 3720 names must be.
func IQN(prefix, uid string, diskID int64) string {
	return strings.ToLower(fmt.Sprintf("%s:%s.%d", prefix, uid, diskID))
}

// NormalizeMAC returns a MAC as lower-case colon-separated hex, accepting
// '-' separators; anything else is invalid.
func NormalizeMAC(s string) (string, error) {
	t := strings.ToLower(strings.ReplaceAll(s, "-", ":"))
	parts := strings.Split(t, ":")
	if len(parts) != 6 {
		return "", fault.Errorf(fault.Invalid, "MAC address %q: want six hex pairs", s)
	}
	for _, p := range parts {
		if len(p) != 2 || strings.Trim(p, "0123456789abcdef") != "" {
			return "", fault.Errorf(fault.Invalid, "MAC address %q: want six hex pairs", s)
		}
	}
	return t, nil
}
