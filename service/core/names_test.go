package core_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

func TestValidateName(t *testing.T) {
	tests := map[string]bool{
		"debian": true, "Debian-12.3_x": true, "a": true, strings.Repeat("a", 64): true, "1img": true,
		"": false, strings.Repeat("a", 65): false, "-lead": false, ".hidden": false, "a/b": false, "a@b": false,
		"a b": false, "a\nb": false, "ünï": false, "a;b": false, "${x}": false, "a:b": false,
	}
	for in, ok := range tests {
		err := core.ValidateName("image name", in)
		if (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", in, err, ok)
		}
		if err != nil && fault.Of(err) != fault.Invalid {
			t.Errorf("ValidateName(%q) error kind %q", in, fault.Of(err))
		}
	}
	if err := core.ValidateNode("node name", "rack1:n3"); err != nil {
		t.Errorf("ValidateNode refuses ':': %v", err)
	}
}

func TestCephNameRoundTrip(t *testing.T) {
	for _, id := range []int64{1, 7, 123456789} {
		n := core.CephName("site1", id)
		got, ok := core.IDFromCephName("site1", n)
		if !ok || got != id {
			t.Errorf("IDFromCephName(%q) = %d, %v", n, got, ok)
		}
	}
	for _, n := range []string{"site1img", "site1img0", "site1img07", "site1imgx", "site2img1", "golden"} {
		if _, ok := core.IDFromCephName("site1", n); ok {
			t.Errorf("IDFromCephName(%q) accepted", n)
		}
	}
	if got := core.IQN("iqn.2026-11.org.bmi", "Site1", 5); got != "iqn.2026-11.org.bmi:site1.5" {
		t.Errorf("IQN = %q", got)
	}
}

func TestNormalizeMAC(t *testing.T) {
	good := map[string]string{"52:54:00:AB:cd:01": "52:54:00:ab:cd:01", "52-54-00-ab-cd-01": "52:54:00:ab:cd:01"}
	for in, want := range good {
		if got, err := core.NormalizeMAC(in); err != nil || got != want {
			t.Errorf("NormalizeMAC(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "52:54:00:ab:cd", "52:54:00:ab:cd:0g", "5254.00ab.cd01", "52:54:00:ab:cd:01:02", "052:54:00:ab:cd:1"} {
		if _, err := core.NormalizeMAC(bad); err == nil {
			t.Errorf("NormalizeMAC(%q) accepted", bad)
		}
	}
}

// FuzzValidateName: whatever passes is safe to put in a Ceph name, an iPXE
// script, a file name or a log line.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"debian", "a/b", "a\nb", "../x", strings.Repeat("z", 70), "${x}", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, validate := range []func(string, string) error{core.ValidateName, core.ValidateNode} {
			if validate("name", s) != nil {
				continue
			}
			if len(s) == 0 || len(s) > core.MaxNameLen || strings.ContainsAny(s, "/@ \t\r\n\\$;'\"`{}") || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "-") {
				t.Fatalf("accepted unsafe name %q", s)
			}
			for _, r := range s {
				if r > unicode.MaxASCII || unicode.IsControl(r) {
					t.Fatalf("accepted non-ASCII or control character in %q", s)
				}
			}
		}
	})
}

func FuzzNormalizeMAC(f *testing.F) {
	f.Add("52:54:00:ab:cd:01")
	f.Add("52-54-00-AB-CD-01")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := core.NormalizeMAC(s)
		if err != nil {
			return
		}
		if len(m) != 17 || strings.Trim(m, "0123456789abcdef:") != "" {
			t.Fatalf("NormalizeMAC(%q) = %q", s, m)
		}
		if again, err := core.NormalizeMAC(m); err != nil || again != m {
			t.Fatalf("not idempotent: %q → %q → %q, %v", s, m, again, err)
		}
	})
}
