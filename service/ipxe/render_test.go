package ipxe

import (
	"bytes"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func baseSpec() Spec {
	return Spec{
		Node: "node1", Disk: "disk1", Portal: "10.77.0.1", Port: 3260, LUN: 1,
		TargetIQN:    "iqn.2026-11.org.bmi:lab.7",
		InitiatorIQN: "iqn.2026-11.org.bmi:node1",
		CHAP:         &CHAP{User: "node1", Secret: "Zx9-secret.42"},
	}
}

func renderer(t testing.TB) *Renderer {
	t.Helper()
	r, err := NewRenderer(DefaultOptions())
	if err != nil {
		t.Fatalf("NewRenderer: %v", err)
	}
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func TestScriptGolden(t *testing.T) {
	r := renderer(t)
	tests := map[string]func(*Spec){
		"chap.ipxe":   func(*Spec) {},
		"nochap.ipxe": func(s *Spec) { s.CHAP = nil; s.InitiatorIQN = "" },
		"mutual.ipxe": func(s *Spec) {
			s.CHAP = &CHAP{User: "node1", Secret: "Zx9-secret.42", MutualUser: "target7", MutualSecret: "back-secret.1"}
		},
		"hexchap.ipxe": func(s *Spec) { s.CHAP = &CHAP{User: "node one", Secret: "p$a{s}s w\nx"} },
		"hostile-names.ipxe": func(s *Spec) {
			s.Node = "evil\nsanboot iscsi:6.6.6.6::::iqn.x ${net0/mac} || goto x"
			s.Disk = "d\r\n:retry\ngoto failed #"
		},
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			s := baseSpec()
			mod(&s)
			got, err := r.Script(s)
			if err != nil {
				t.Fatalf("Script: %v", err)
			}
			golden(t, name, got)
		})
	}
}

func TestNoConfigGolden(t *testing.T) {
	got, err := renderer(t).NoConfig(net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 1}, "BMI has no boot config for this machine\n${x} || reboot")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "noconfig.ipxe", got)
}

func TestScriptInvalid(t *testing.T) {
	r := renderer(t)
	tests := map[string]func(*Spec){
		"portal with space":   func(s *Spec) { s.Portal = "10.0.0.1 x" },
		"portal empty":        func(s *Spec) { s.Portal = "" },
		"portal ipxe syntax":  func(s *Spec) { s.Portal = "${next-server}" },
		"port":                func(s *Spec) { s.Port = 70000 },
		"lun":                 func(s *Spec) { s.LUN = -1 },
		"target newline":      func(s *Spec) { s.TargetIQN = "iqn.2026-11.org.bmi:x\nreboot" },
		"target not iqn":      func(s *Spec) { s.TargetIQN = "1img7" },
		"initiator syntax":    func(s *Spec) { s.InitiatorIQN = "iqn.2026-11.org.bmi:${x}" },
		"chap no secret":      func(s *Spec) { s.CHAP = &CHAP{User: "u"} },
		"mutual half":         func(s *Spec) { s.CHAP = &CHAP{User: "u", Secret: "s", MutualUser: "m"} },
		"chap secret too big": func(s *Spec) { s.CHAP = &CHAP{User: "u", Secret: logging.Secret("s" + strings.Repeat("x", 300))} },
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			s := baseSpec()
			mod(&s)
			_, err := r.Script(s)
			if !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("Script(%+v) = %v, want an invalid-argument error", s, err)
			}
		})
	}
}

func TestOperatorTemplateDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SanbootTemplate), []byte("#!ipxe\nsanboot {{.URI}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := NewRenderer(Options{TemplateDir: dir, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Script(baseSpec())
	if err != nil {
		t.Fatal(err)
	}
	if want := "#!ipxe\nsanboot iscsi:10.77.0.1::3260:1:iqn.2026-11.org.bmi:lab.7\n"; string(got) != want {
		t.Errorf("operator template gave %q, want %q", got, want)
	}
	// The no-config template falls back to the embedded one.
	nc, err := r.NoConfig(net.HardwareAddr{1, 2, 3, 4, 5, 6}, "x")
	if err != nil || !bytes.Contains(nc, []byte("BMI-NO-BOOT-CONFIG 01:02:03:04:05:06")) {
		t.Errorf("NoConfig with operator dir = %q, %v", nc, err)
	}

	bad := map[string]string{
		"unknown key": "#!ipxe\n{{.NoSuchKey}}\n",
		"syntax":      "#!ipxe\n{{.URI\n",
	}
	for name, text := range bad {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, SanbootTemplate), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := NewRenderer(Options{TemplateDir: d, Attempts: 1}); !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("NewRenderer with a broken template = %v, want an invalid-argument error", err)
			}
		})
	}
}

func TestDisplay(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"plain":   {"node-1.rack_2", "node-1.rack_2"},
		"empty":   {"", "-"},
		"newline": {"a\nb", "a_b"},
		"syntax":  {"${x}||y", "__x___y"},
		"unicode": {"nöde", "n_de"},
		"long":    {strings.Repeat("a", 100), strings.Repeat("a", 64) + "..."},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Display(tc.in); got != tc.want {
				t.Errorf("Display(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// shape is the script's structure: each line's first word, and labels and
// gotos in full. Names may change what a script says, never its shape.
func shape(script []byte) []string {
	var out []string
	for _, line := range strings.Split(string(script), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			out = append(out, "")
			continue
		}
		switch {
		case strings.HasPrefix(f[0], "#"):
			out = append(out, "#")
		case strings.HasPrefix(f[0], ":"), f[0] == "goto", f[0] == "sanboot", f[0] == "set", f[0] == "inc", f[0] == "iseq":
			out = append(out, line)
		default:
			out = append(out, f[0])
		}
	}
	return out
}

func FuzzScript(f *testing.F) {
	f.Add("node1", "disk1", "node1", "secret")
	f.Add("a\nsanboot x", "${y}", "u s", "p\x00w")
	f.Add("\r\n:retry", "|| goto failed", "", "")
	r := renderer(f)
	ref, err := r.Script(baseSpec())
	if err != nil {
		f.Fatal(err)
	}
	refShape := strings.Join(shape(ref), "\n")
	f.Fuzz(func(t *testing.T, node, disk, user, secret string) {
		s := baseSpec()
		s.Node, s.Disk = node, disk
		s.CHAP = &CHAP{User: "node1", Secret: "Zx9-secret.42"}
		if user != "" && secret != "" && len(user) <= 255 && len(secret) <= 255 {
			s.CHAP = &CHAP{User: user, Secret: logging.Secret(secret)}
		}
		got, err := r.Script(s)
		if err != nil {
			t.Fatalf("Script with names %q/%q: %v", node, disk, err)
		}
		gotShape := shape(got)
		// The CHAP lines may switch to :hex form; everything else must be
		// identical to the reference.
		for i, l := range gotShape {
			if strings.HasPrefix(l, "set username") || strings.HasPrefix(l, "set password") {
				gotShape[i] = shape(ref)[i]
			}
		}
		if g := strings.Join(gotShape, "\n"); g != refShape {
			t.Fatalf("names %q/%q changed the script's shape:\n%s", node, disk, got)
		}
		if strings.Count(string(got), "${") != strings.Count(string(ref), "${") {
			t.Fatalf("names %q/%q added an expansion:\n%s", node, disk, got)
		}
	})
}

func TestOptions(t *testing.T) {
	c := config.Default().Boot.IPXE
	if got := OptionsFromConfig(c); got != DefaultOptions() {
		t.Errorf("options from the default config %+v, want %+v", got, DefaultOptions())
	}
	for name, o := range map[string]Options{
		"zero attempts":  {},
		"many attempts":  {Attempts: 101},
		"negative delay": {Attempts: 1, FirstDelay: -1},
		"huge pause":     {Attempts: 1, NoConfigPause: 3601},
	} {
		if _, err := NewRenderer(o); !errors.Is(err, fault.ErrInvalid) {
			t.Errorf("NewRenderer(%s) = %v, want invalid", name, err)
		}
	}
	r, err := NewRenderer(Options{Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := r.NoConfig(net.HardwareAddr{1, 2, 3, 4, 5, 6}, "x")
	if !bytes.Contains(got, []byte("sleep 0\n")) {
		t.Errorf("a zero pause is not zero:\n%s", got)
	}
}

func BenchmarkScript(b *testing.B) {
	r := renderer(b)
	s := baseSpec()
	for b.Loop() {
		if _, err := r.Script(s); err != nil {
			b.Fatal(err)
		}
	}
}

// DefaultOptions are what bmid's default configuration gives: 4
// attempts, 2 s first back-off, 10 s before the reboot and a 5 s pause on
// "no boot config".
func DefaultOptions() Options {
	return Options{Attempts: 4, FirstDelay: 2, RebootDelay: 10, NoConfigPause: 5}
}
