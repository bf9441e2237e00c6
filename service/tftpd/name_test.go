package tftpd

import (
	"errors"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/fault"
)

func TestCleanName(t *testing.T) {
	tests := map[string]struct {
		in, want string
		ok       bool
	}{
		"plain":          {"undionly.kpxe", "undionly.kpxe", true},
		"subdir":         {"efi/ipxe.efi", "efi/ipxe.efi", true},
		"backslash":      {`efi\ipxe.efi`, "efi/ipxe.efi", true},
		"empty":          {"", "", false},
		"dotdot":         {"../etc/passwd", "", false},
		"inner dotdot":   {"a/../../etc/passwd", "", false},
		"backslash up":   {`..\..\etc\passwd`, "", false},
		"absolute":       {"/etc/passwd", "", false},
		"absolute bs":    {`\etc\passwd`, "", false},
		"dot":            {"./undionly.kpxe", "", false},
		"double slash":   {"a//b", "", false},
		"trailing slash": {"a/", "", false},
		"nul":            {"undionly.kpxe\x00.txt", "", false},
		"newline":        {"a\nb", "", false},
		"del":            {"a\x7fb", "", false},
		"long":           {strings.Repeat("a", MaxNameLen+1), "", false},
		"max":            {strings.Repeat("a", MaxNameLen), strings.Repeat("a", MaxNameLen), true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := CleanName(tc.in)
			if tc.ok {
				if err != nil || got != tc.want {
					t.Fatalf("CleanName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("CleanName(%q) = %q, %v; want an invalid-argument error", tc.in, got, err)
			}
		})
	}
}

func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"undionly.kpxe", "../x", "/etc/passwd", "a\x00b", `a\..\b`, "a/./b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := CleanName(name)
		if err != nil {
			return
		}
		if strings.HasPrefix(got, "/") || strings.Contains(got, `\`) || len(got) > MaxNameLen {
			t.Fatalf("CleanName(%q) = %q: absolute, backslash or too long", name, got)
		}
		for _, el := range strings.Split(got, "/") {
			if el == "" || el == "." || el == ".." {
				t.Fatalf("CleanName(%q) = %q: bad element %q", name, got, el)
			}
		}
		for _, c := range []byte(got) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("CleanName(%q) = %q: control byte", name, got)
			}
		}
	})
}

func TestNewFromConfig(t *testing.T) {
	c := config.Default().Boot
	if NewFromConfig(c, nil, nil, nil) != nil {
		t.Fatal("a server without boot.tftp.listen")
	}
	c.TFTP.Listen = "10.0.0.1:69"
	c.Faults.TFTP.DropPercent = 50
	s := NewFromConfig(c, nil, nil, nil)
	if s.Addr != "10.0.0.1:69" || s.Root != "/usr/lib/ipxe" || len(s.Preload) != 1 || s.Faults.DropRate != 0.5 {
		t.Fatalf("server from config: %+v", s)
	}
}
