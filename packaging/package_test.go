package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/internal/testenv"
)

// pkgWant is what one package must hold.
type pkgWant struct {
	files     []string // paths in the package's data
	conffiles []string
	depends   []string // fragments of the Depends field
	units     []string // systemd units to verify
}

var packages = map[string]pkgWant{
	"bmid": {files: []string{"./usr/bin/bmid", "./lib/systemd/system/bmid.service", "./etc/bmi/bmid.yaml", "./usr/share/doc/bmid/README.md"},
		conffiles: []string{"/etc/bmi/bmid.yaml"}, depends: []string{"librados2", "librbd1", "adduser"},
		units: []string{"bmid.service"}},
	"bmi": {files: []string{"./usr/bin/bmi"}},
	"hil-mock": {files: []string{"./usr/bin/hil-mock", "./lib/systemd/system/hil-mock.service", "./etc/bmi/hil-mock.yaml"},
		conffiles: []string{"/etc/bmi/hil-mock.yaml"}, units: []string{"hil-mock.service"}},
	"bmi-uat": {files: []string{"./usr/bin/bmi-uat"}},
}

// TestPackages runs `make package` and checks each .deb: its files, its
// conffiles, its dependencies, that it carries no state (so that upgrades
// and removals leave /var/lib/bmi alone), that the static binaries are
// static, and its systemd units (systemd-analyze verify against the
// unpacked package).
func TestPackages(t *testing.T) {
	testenv.SkipShort(t, "building the packages")
	dpkg := testenv.RequireCommand(t, "dpkg-deb", "dpkg")
	analyze := testenv.RequireCommand(t, "systemd-analyze", "systemd")
	make := testenv.RequireCommand(t, "make", "make")
	cmd := exec.Command(make, "-C", "..", "package")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	for name, want := range packages {
		debs, _ := filepath.Glob(filepath.Join("..", "dist", name+"_*.deb"))
		sort.Strings(debs)
		if len(debs) == 0 {
			t.Errorf("%s: no package in dist/", name)
			continue
		}
		deb := debs[len(debs)-1]
		out, err := exec.Command(dpkg, "-c", deb).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb -c %s: %v\n%s", deb, err, out)
		}
		listing := string(out)
		for _, f := range want.files {
			if !regexp.MustCompile(`\s` + regexp.QuoteMeta(f) + `(\s|$)`).MatchString(listing) {
				t.Errorf("%s lacks %s:\n%s", name, f, listing)
			}
		}
		if strings.Contains(listing, "./var/lib/") {
			t.Errorf("%s carries state under /var/lib (an upgrade or removal would touch it):\n%s", name, listing)
		}
		ctl := t.TempDir()
		if out, err := exec.Command(dpkg, "-e", deb, ctl).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
		}
		conf, _ := os.ReadFile(filepath.Join(ctl, "conffiles"))
		for _, c := range want.conffiles {
			if !strings.Contains(string(conf), c) {
				t.Errorf("%s: %s is not a conffile (conffiles: %q)", name, c, conf)
			}
		}
		control, err := os.ReadFile(filepath.Join(ctl, "control"))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range want.depends {
			if !regexp.MustCompile(`(?m)^Depends:.*\b` + regexp.QuoteMeta(d) + `\b`).Match(control) {
				t.Errorf("%s does not depend on %s:\n%s", name, d, control)
			}
		}
		for _, script := range []string{"postrm", "prerm"} {
			if b, err := os.ReadFile(filepath.Join(ctl, script)); err == nil && regexp.MustCompile(`rm\s+-[a-z]*r[a-z]*\s+/var/lib`).Match(b) {
				t.Errorf("%s's %s removes state", name, script)
			}
		}
		root := t.TempDir()
		if out, err := exec.Command(dpkg, "-x", deb, root).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
		}
		if name != "bmid" {
			// The CLI, hil-mock and bmi-uat are static: installable anywhere.
			if out, _ := exec.Command("file", filepath.Join(root, "usr/bin", name)).CombinedOutput(); len(out) > 0 &&
				!strings.Contains(string(out), "statically linked") {
				t.Errorf("%s is not static: %s", name, out)
			}
		}
		for _, u := range want.units {
			// Verified as shipped, except that ExecStart names the unpacked
			// binary (verify checks that it is there and executable).
			b, err := os.ReadFile(filepath.Join(root, "lib/systemd/system", u))
			if err != nil {
				t.Fatal(err)
			}
			unit := filepath.Join(t.TempDir(), u)
			b = []byte(strings.ReplaceAll(string(b), "ExecStart=/usr/bin/", "ExecStart="+root+"/usr/bin/"))
			if err := os.WriteFile(unit, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
			}
		}
	}
}
