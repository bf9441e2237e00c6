package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/image"
	"github.com/bmi-go/bmi/service/logging"
)

// labCLI returns a runner of bin's bmi-lab with the lab's --name and --dir
// after the given arguments; a failure carries its stderr.
func labCLI(t *testing.T, bin, name, dir string) func(args ...string) (string, error) {
	return func(args ...string) (string, error) {
		t.Helper()
		var out, errb bytes.Buffer
		c := exec.Command(filepath.Join(bin, "bmi-lab"), append(args, "--name", name, "--dir", dir)...)
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil {
			return out.String(), &exitError{err, errb.String()}
		}
		return out.String(), nil
	}
}

// apiCaller returns a JSON caller as user: it fails the test unless the
// answer has status want, and returns the decoded object.
func apiCaller(t *testing.T, user, password string) func(method, url, body string, want int) map[string]any {
	return func(method, url, body string, want int) map[string]any {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
		req.SetBasicAuth(user, password)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: HTTP %d, want %d: %s", method, url, resp.StatusCode, want, b)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
}

// upLab runs `bmi-lab up ARGS` (with the shared image cache) for the
// lab newSite made, and opens it with its credentials.
func upLab(t *testing.T, cli func(args ...string) (string, error), name, dir string, args ...string) (*lab.Lab, lab.Credentials) {
	t.Helper()
	if out, err := cli(append(append([]string{"up"}, args...), "--cache", imageCacheDir())...); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	l, err := lab.New(name, dir, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := l.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	return l, cred
}

// requireSite skips (or, under CI, fails) a test that brings a whole lab
// up unless every tool it needs is installed: the lab's commands, the
// golden image's tools, Ceph's daemons (and more, name → Debian package)
// and Go to build the binaries.
func requireSite(t *testing.T, more map[string]string) {
	t.Helper()
	testenv.RequireRoot(t)
	for cmd, pkg := range lab.Commands {
		testenv.RequireCommand(t, cmd, pkg)
	}
	for name, pkg := range image.Tools {
		testenv.RequireCommand(t, name, pkg)
	}
	for cmd, pkg := range map[string]string{"ceph-mon": "ceph-mon", "ceph-osd": "ceph-osd", "go": "golang (Go 1.26)"} {
		testenv.RequireCommand(t, cmd, pkg)
	}
	for cmd, pkg := range more {
		testenv.RequireCommand(t, cmd, pkg)
	}
}

// newSite builds the binaries and returns the bmi-lab runner of a lab
// named name in a temporary directory (bin is where the binaries are),
// with a lab of that name left by a killed run taken down first and this
// one taken down when the test ends; it does not bring the lab up.
func newSite(t *testing.T, name string) (cli func(args ...string) (string, error), bin, dir string) {
	t.Helper()
	bin = buildLab(t)
	dir = filepath.Join(t.TempDir(), "lab")
	cli = labCLI(t, bin, name, dir)
	_, _ = cli("down") // a stale lab from a killed run
	t.Cleanup(func() { _, _ = cli("down") })
	return cli, bin, dir
}

// imageCacheDir is where the lab tests keep the golden images they build.
func imageCacheDir() string { return filepath.Join(os.TempDir(), "bmi-lab-test-images") }
