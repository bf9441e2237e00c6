package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/service/procenv"
)

// TestServeRuntimeSettings runs a built bmid serve, which re-executes
// itself with procenv's settings before it loads its configuration: its
// "go runtime" log line shows the GODEBUG the process runs with. The
// configuration stops it right after that line.
func TestServeRuntimeSettings(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bmid")
	if out, err := exec.Command("go", "build", "-tags", "pacific,ceph_preview", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build bmid: %v\n%s", err, out)
	}
	conf := filepath.Join(dir, "bmid.yaml")
	// iscsi.listen is a wildcard and no portal is set: refused after the
	// log line, before anything is opened.
	body := "uid: s1\nhil:\n  url: http://127.0.0.1:5000\nstate:\n  path: " + filepath.Join(dir, "bmi.db") + "\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"default", nil, procenv.Setting},
		{"other settings kept", []string{"GODEBUG=gctrace=0"}, "gctrace=0," + procenv.Setting},
		{"the operator's schedtrace stands", []string{"GODEBUG=schedtrace=0"}, "schedtrace=0"},
		{"opt out", []string{procenv.OptOut + "=default"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, "serve", "-c", conf)
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "GODEBUG=") && !strings.HasPrefix(kv, procenv.OptOut+"=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, tt.env...)
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Fatalf("exit %d (%v), want 1:\n%s", code, err, out)
			}
			var lines []string
			for _, l := range strings.Split(string(out), "\n") {
				var rec struct{ Msg, Godebug string }
				if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "go runtime" {
					lines = append(lines, rec.Godebug)
				}
			}
			if len(lines) != 1 || lines[0] != tt.want {
				t.Fatalf("go runtime lines %q, want one with godebug %q:\n%s", lines, tt.want, out)
			}
			if n := strings.Count(string(out), "iscsi.portal: required"); n != 1 {
				t.Fatalf("the configuration error %d times, want once:\n%s", n, out)
			}
		})
	}
}
