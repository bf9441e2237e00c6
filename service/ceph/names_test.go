package ceph

import (
	"errors"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/fault"
)

func TestValidateName(t *testing.T) {
	tests := map[string]struct {
		name string
		ok   bool
	}{
		"bmi name":         {"a1b2img42", true},
		"golden with dots": {"centos-7.9_golden", true},
		"longest":          {strings.Repeat("x", MaxNameLen), true},
		"empty":            {"", false},
		"too long":         {strings.Repeat("x", MaxNameLen+1), false},
		"leading dot":      {".hidden", false},
		"leading dash":     {"-rf", false},
		"snapshot syntax":  {"img@snap", false},
		"pool syntax":      {"rbd/img", false},
		"space":            {"my image", false},
		"non-ascii":        {"imagé", false},
		"nul":              {"a\x00b", false},
		"newline":          {"a\nb", false},
		"shell metachar":   {"a;b", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := ValidateName("image", tc.name)
			if tc.ok != (err == nil) {
				t.Fatalf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil && !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("error %v is not fault.ErrInvalid", err)
			}
		})
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a1img2", "", ".x", "a@b", strings.Repeat("z", 70), "x/y", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName("image", s)
		if err != nil {
			if fault.Of(err) != fault.Invalid {
				t.Fatalf("ValidateName(%q): kind %s, want invalid", s, fault.Of(err))
			}
			return
		}
		// an accepted name is safe for Ceph, rbd commands and iSCSI names
		if len(s) == 0 || len(s) > MaxNameLen || s[0] == '.' || s[0] == '-' {
			t.Fatalf("ValidateName accepted %q", s)
		}
		if strings.ContainsAny(s, "@/ \t\n\x00:;$'\"\\") {
			t.Fatalf("ValidateName accepted %q with a separator or metacharacter", s)
		}
		for _, r := range s {
			if r > 127 {
				t.Fatalf("ValidateName accepted non-ASCII %q", s)
			}
		}
	})
}
