package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/service/clikit"
	"github.com/bmi-go/bmi/service/logging"
)

// run runs bmi-lab with args and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot()
	root.SetOut(&out)
	root.SetErr(&errb)
	code := clikit.Run(context.Background(), root, args, &errb)
	return out.String(), errb.String(), code
}

// TestLabCommands builds a two-node lab (network, libvirtd, machines) and
// drives status, nodes, env, console and down through the CLI.
func TestLabCommands(t *testing.T) {
	testenv.RequireRoot(t)
	for cmd, pkg := range lab.Commands {
		testenv.RequireCommand(t, cmd, pkg)
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "lab")
	flags := []string{"--name", "tcli", "--dir", dir}
	run(t, append([]string{"down"}, flags...)...) // a stale lab from a killed run
	l, err := lab.Build(ctx, lab.Options{Name: "tcli", Dir: dir, Nodes: 2}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down(context.Background(), false) })

	out, errs, code := run(t, append([]string{"status", "--json"}, flags...)...)
	var st lab.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || !st.Namespace || st.Libvirtd == 0 || len(st.Machines) != 2 {
		t.Fatalf("status: code %d, %s %s", code, out, errs)
	}
	out, _, code = run(t, append([]string{"status"}, flags...)...)
	if code != 0 || !strings.Contains(out, "bmilab-tcli present") || !strings.Contains(out, "tap-01 (no network)") {
		t.Fatalf("status table: code %d\n%s", code, out)
	}

	// A console with a boot marker on it (the golden image's format).
	n1, _ := l.Node("node-01")
	if err := os.WriteFile(n1.Serial, []byte("SeaBIOS\r\nBMI-LAB-STATE node-02 4\r\nBMI-LAB-BOOTED node-01 mode=ibft uptime=2.31\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code = run(t, append([]string{"nodes"}, flags...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.Contains(lines[1], "node-01") || !strings.Contains(lines[1], "off") ||
		!strings.Contains(lines[1], "node-01 ibft") || !strings.Contains(lines[1], "node-02 4") || !strings.Contains(lines[1], "2.31 s") {
		t.Fatalf("nodes: code %d\n%s%s", code, out, errs)
	}
	out, _, code = run(t, append([]string{"console", "node-01", "--wait", `BMI-LAB-BOOTED (\S+)`, "--timeout", "2s"}, flags...)...)
	if code != 0 || !strings.HasPrefix(out, "BMI-LAB-BOOTED node-01") {
		t.Fatalf("console --wait: code %d, %q", code, out)
	}
	_, errs, code = run(t, append([]string{"console", "node-01", "--from-end", "--wait", "BMI-LAB-BOOTED", "--timeout", "300ms"}, flags...)...)
	if code != clikit.ExitFailure || !strings.Contains(errs, "no \"BMI-LAB-BOOTED\" within") {
		t.Fatalf("console --wait without a new marker: code %d, %q", code, errs)
	}
	if _, errs, code = run(t, append([]string{"console", "node-99"}, flags...)...); code != clikit.ExitFailure || !strings.Contains(errs, "no node") {
		t.Fatalf("console of an unknown node: code %d, %q", code, errs)
	}
	out, _, code = run(t, append([]string{"env"}, flags...)...)
	if code != 0 || !strings.Contains(out, "export BMI_LAB_NAMESPACE=bmilab-tcli") || !strings.Contains(out, "export BMI_LAB_ADDR="+l.LabAddr) {
		t.Fatalf("env: code %d\n%s", code, out)
	}

	out, errs, code = run(t, append([]string{"down"}, flags...)...)
	if code != 0 {
		t.Fatalf("down: code %d, %s %s", code, out, errs)
	}
	out, _, _ = run(t, append([]string{"status"}, flags...)...)
	if !strings.Contains(out, "nothing on this machine") {
		t.Fatalf("status after down:\n%s", out)
	}
	if _, _, code = run(t, append([]string{"down"}, flags...)...); code != 0 {
		t.Fatalf("down of a removed lab: code %d", code)
	}
	if _, _, code = run(t, "status", "--name", "Bad/Name"); code != clikit.ExitUsage {
		t.Fatalf("bad --name: code %d, want %d", code, clikit.ExitUsage)
	}
}
