package procenv

import (
	"slices"
	"strings"
	"testing"
)

func TestEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		want    []string
		changed bool
	}{
		{"no GODEBUG", []string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=" + Setting}, true},
		{"empty GODEBUG", []string{"GODEBUG=", "A=1"}, []string{"GODEBUG=" + Setting, "A=1"}, true},
		{"other settings kept", []string{"GODEBUG=gctrace=1"}, []string{"GODEBUG=gctrace=1," + Setting}, true},
		{"already set", []string{"GODEBUG=" + Setting}, []string{"GODEBUG=" + Setting}, false},
		{"operator's schedtrace stands", []string{"GODEBUG=madvdontneed=1, schedtrace=1000"}, []string{"GODEBUG=madvdontneed=1, schedtrace=1000"}, false},
		{"schedtrace off stands", []string{"GODEBUG=schedtrace=0"}, []string{"GODEBUG=schedtrace=0"}, false},
		{"opt out", []string{OptOut + "=default", "GODEBUG=gctrace=1"}, []string{OptOut + "=default", "GODEBUG=gctrace=1"}, false},
		{"other opt-out values apply it", []string{OptOut + "=tuned"}, []string{OptOut + "=tuned", "GODEBUG=" + Setting}, true},
		{"a similar name is not GODEBUG", []string{"XGODEBUG=schedtrace=1"}, []string{"XGODEBUG=schedtrace=1", "GODEBUG=" + Setting}, true},
		{"scheddetail is not schedtrace", []string{"GODEBUG=scheddetail=1"}, []string{"GODEBUG=scheddetail=1," + Setting}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.env)
			got, changed := Env(in)
			if changed != tt.changed || !slices.Equal(got, tt.want) {
				t.Errorf("Env(%q) = %q, %v; want %q, %v", tt.env, got, changed, tt.want, tt.changed)
			}
			if !slices.Equal(in, tt.env) {
				t.Errorf("Env changed its argument: %q", in)
			}
		})
	}
}

// FuzzEnv: Env keeps every other variable as it was, and applied twice it
// changes nothing the second time.
func FuzzEnv(f *testing.F) {
	f.Add("GODEBUG=gctrace=1\nPATH=/bin")
	f.Add("GODEBUG=schedtrace=5")
	f.Add(OptOut + "=default")
	f.Fuzz(func(t *testing.T, s string) {
		env := strings.Split(s, "\n")
		got, changed := Env(env)
		if !changed {
			if !slices.Equal(got, env) {
				t.Fatalf("unchanged but different: %q -> %q", env, got)
			}
			return
		}
		if again, ch := Env(got); ch || !slices.Equal(again, got) {
			t.Fatalf("not idempotent: %q -> %q -> %q", env, got, again)
		}
		var other, otherGot []string
		for _, kv := range env {
			if !strings.HasPrefix(kv, "GODEBUG=") {
				other = append(other, kv)
			}
		}
		for _, kv := range got {
			if !strings.HasPrefix(kv, "GODEBUG=") {
				otherGot = append(otherGot, kv)
			}
		}
		if !slices.Equal(other, otherGot) {
			t.Fatalf("other variables changed: %q -> %q", env, got)
		}
	})
}
