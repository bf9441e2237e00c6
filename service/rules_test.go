package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/bmi-go/bmi"

// buildTags are the tags the Ceph-facing code is built with (Ceph 16).
const buildTags = "pacific,ceph_preview"

// pkgInfo is the part of `go list -json` the rules read.
type pkgInfo struct {
	ImportPath   string
	Standard     bool
	Module       *struct{ Path string }
	CgoFiles     []string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// libraryRule confines a third-party library to the packages allowed to use it.
type libraryRule struct {
	lib     string // import path prefix of the library
	allowed string // the only package tree of ours that may import it
}

var libraryRules = []libraryRule{
	{"github.com/ceph/go-ceph", module + "/service/ceph"},
	{"github.com/gostor/gotgt", module + "/service/iscsi"},
	{"github.com/gin-gonic/gin", module + "/service/apiserver"},
}

// serviceForbidden are what no non-test code under service/ may import.
var serviceForbidden = []string{
	module + "/cmd", module + "/lab", module + "/steps", module + "/uat",
	"testing", "github.com/cucumber/godog", "github.com/digitalocean/go-libvirt",
}

// engineAllowed are the only packages of ours the operation engine
// (service/opjournal) may import: it knows nothing of images, disks, boot
// or any other domain, only steps, the journal and recovery.
var engineAllowed = []string{module + "/service/fault"}

const engine = module + "/service/opjournal"

// cgoAllowed is the only package tree of ours that may use cgo.
const cgoAllowed = module + "/service/ceph"

// noCgoBinaries must build with CGO_ENABLED=0: operators install them anywhere.
var noCgoBinaries = []string{"./cmd/bmi", "./cmd/hil-mock", "./cmd/bmi-uat"}

func under(path, tree string) bool { return path == tree || strings.HasPrefix(path, tree+"/") }

// isTestVariant reports whether a `go list -test` entry is a test build of a
// package ("p [p.test]") or a generated test main ("p.test").
func isTestVariant(path string) bool {
	return strings.Contains(path, " [") || strings.HasSuffix(path, ".test")
}

func matchesLib(imp, lib string) bool { return under(imp, lib) }

// checkRules returns one line per broken rule among the module's packages.
func checkRules(pkgs []pkgInfo) []string {
	var bad []string
	for _, p := range pkgs {
		if !under(p.ImportPath, module) || isTestVariant(p.ImportPath) {
			continue // test variants: their imports are the base package's TestImports
		}
		if len(p.CgoFiles) > 0 && !under(p.ImportPath, cgoAllowed) {
			bad = append(bad, fmt.Sprintf("%s uses cgo (%s); only %s may", p.ImportPath, strings.Join(p.CgoFiles, ", "), cgoAllowed))
		}
		all := append(append(append([]string(nil), p.Imports...), p.TestImports...), p.XTestImports...)
		for _, imp := range all {
			for _, r := range libraryRules {
				if matchesLib(imp, r.lib) && !under(p.ImportPath, r.allowed) {
					bad = append(bad, fmt.Sprintf("%s imports %s; only %s may", p.ImportPath, imp, r.allowed))
				}
			}
		}
		if under(p.ImportPath, engine) {
			for _, imp := range p.Imports {
				if !strings.Contains(strings.Split(imp, "/")[0], ".") {
					continue // the standard library
				}
				ok := false
				for _, a := range engineAllowed {
					ok = ok || imp == a
				}
				if !ok {
					bad = append(bad, fmt.Sprintf("%s imports %s; the operation engine imports no domain package", p.ImportPath, imp))
				}
			}
		}
		if under(p.ImportPath, module+"/service") {
			for _, imp := range p.Imports {
				for _, f := range serviceForbidden {
					if imp == f || under(imp, f) {
						bad = append(bad, fmt.Sprintf("%s imports %s; service/ never imports it", p.ImportPath, imp))
					}
				}
			}
		}
	}
	sort.Strings(bad)
	return bad
}

// cgoDeps returns the non-standard packages with cgo files among pkgs.
func cgoDeps(pkgs []pkgInfo) []string {
	var out []string
	for _, p := range pkgs {
		if !p.Standard && len(p.CgoFiles) > 0 {
			out = append(out, p.ImportPath)
		}
	}
	return out
}

// goTool is the go command: $GOROOT/bin/go when the test runs under `go
// test` (which sets GOROOT), else the one on PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// repoRoot is the module root: this test runs in service/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func goList(t *testing.T, env []string, args ...string) []pkgInfo {
	t.Helper()
	cmd := exec.Command(goTool(), append([]string{"list", "-tags", buildTags, "-json"}, args...)...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
	}
	var pkgs []pkgInfo
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestDependencyRules checks the real tree.
func TestDependencyRules(t *testing.T) {
	pkgs := goList(t, nil, "-deps", "-test", "./...")
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for _, b := range checkRules(pkgs) {
		t.Error(b)
	}
}

// TestNoCgoBinaries checks that the CLI, the HIL emulator and the acceptance
// runner link no cgo package even where cgo is available, and build with
// CGO_ENABLED=0.
func TestNoCgoBinaries(t *testing.T) {
	pkgs := goList(t, nil, append([]string{"-deps"}, noCgoBinaries...)...)
	if dep := cgoDeps(pkgs); len(dep) > 0 {
		t.Errorf("%v depend on cgo packages: %v", noCgoBinaries, dep)
	}
	if testing.Short() {
		t.Skip("-short: not building the binaries")
	}
	cmd := exec.Command(goTool(), append([]string{"build", "-o", t.TempDir()}, noCgoBinaries...)...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build %v: %v\n%s", noCgoBinaries, err, out)
	}
}

// TestRulesCatchViolations proves each rule fails when broken.
func TestRulesCatchViolations(t *testing.T) {
	m := func(s string) string { return module + "/" + s }
	tests := map[string]struct {
		pkg  pkgInfo
		want string // substring of the single violation; "" for none
	}{
		"cgo outside ceph":           {pkgInfo{ImportPath: m("service/store"), CgoFiles: []string{"x.go"}}, "service/store uses cgo"},
		"cgo in ceph":                {pkgInfo{ImportPath: m("service/ceph"), CgoFiles: []string{"x.go"}}, ""},
		"go-ceph outside ceph":       {pkgInfo{ImportPath: m("service/core"), Imports: []string{"github.com/ceph/go-ceph/rbd"}}, "imports github.com/ceph/go-ceph/rbd; only"},
		"go-ceph in a test":          {pkgInfo{ImportPath: m("lab/cluster"), XTestImports: []string{"github.com/ceph/go-ceph/rados"}}, "lab/cluster imports github.com/ceph/go-ceph/rados"},
		"go-ceph in ceph":            {pkgInfo{ImportPath: m("service/ceph"), Imports: []string{"github.com/ceph/go-ceph/rbd"}}, ""},
		"gotgt outside iscsi":        {pkgInfo{ImportPath: m("cmd/bmid"), Imports: []string{"github.com/gostor/gotgt/pkg/scsi"}}, "only " + m("service/iscsi")},
		"gin outside apiserver":      {pkgInfo{ImportPath: m("service/hilmock"), Imports: []string{"github.com/gin-gonic/gin"}}, "only " + m("service/apiserver")},
		"gin in apiserver":           {pkgInfo{ImportPath: m("service/apiserver"), Imports: []string{"github.com/gin-gonic/gin"}}, ""},
		"service imports cmd":        {pkgInfo{ImportPath: m("service/core"), Imports: []string{m("cmd/bmid")}}, "service/ never imports it"},
		"service imports lab":        {pkgInfo{ImportPath: m("service/hilmock"), Imports: []string{m("lab/libvirt")}}, "imports " + m("lab/libvirt")},
		"service imports steps":      {pkgInfo{ImportPath: m("service/api"), Imports: []string{m("steps")}}, "imports " + m("steps")},
		"service imports uat":        {pkgInfo{ImportPath: m("service/api"), Imports: []string{m("uat")}}, "imports " + m("uat")},
		"service imports testing":    {pkgInfo{ImportPath: m("service/ceph/cephtest"), Imports: []string{"testing"}}, "imports testing"},
		"service imports godog":      {pkgInfo{ImportPath: m("service/x"), Imports: []string{"github.com/cucumber/godog"}}, "godog"},
		"service test imports lab":   {pkgInfo{ImportPath: m("service/x"), TestImports: []string{m("lab")}}, ""},
		"lab imports service":        {pkgInfo{ImportPath: m("lab"), Imports: []string{m("service/config")}}, ""},
		"similar prefix not matched": {pkgInfo{ImportPath: m("service/cephx"), CgoFiles: []string{"x.go"}}, "service/cephx uses cgo"},
		"test variant skipped":       {pkgInfo{ImportPath: m("service/x") + " [" + m("service/x.test") + "]", Imports: []string{"testing"}}, ""},
		"other module ignored":       {pkgInfo{ImportPath: "example.com/other", CgoFiles: []string{"x.go"}}, ""},
		"engine imports core":        {pkgInfo{ImportPath: engine, Imports: []string{"context", m("service/core")}}, "the operation engine imports no domain package"},
		"engine imports fault":       {pkgInfo{ImportPath: engine, Imports: []string{"context", m("service/fault")}}, ""},
		"engine imports a library":   {pkgInfo{ImportPath: engine, Imports: []string{"github.com/pressly/goose/v3"}}, "the operation engine imports no domain package"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := checkRules([]pkgInfo{tc.pkg})
			switch {
			case tc.want == "" && len(got) != 0:
				t.Fatalf("checkRules(%+v) = %q, want no violation", tc.pkg, got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Fatalf("checkRules(%+v) = %q, want one violation containing %q", tc.pkg, got, tc.want)
			}
		})
	}
	if got := cgoDeps([]pkgInfo{{ImportPath: "net", Standard: true, CgoFiles: []string{"c.go"}}, {ImportPath: "github.com/ceph/go-ceph/rados", CgoFiles: []string{"c.go"}}}); len(got) != 1 {
		t.Fatalf("cgoDeps = %v, want only the non-standard package", got)
	}
}
