package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/apiserver/apitest"
	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/cli"
	"github.com/bmi-go/bmi/service/clikit"
	"github.com/bmi-go/bmi/service/fault"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// bmi runs the CLI in-process with the given environment.
func bmi(env map[string]string, stdin string, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	root := cli.NewRoot(cli.Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(stdin),
		Getenv: func(k string) string { return env[k] }})
	code := clikit.Run(context.Background(), root, args, &errb)
	return out.String(), errb.String(), code
}

var (
	timeRe = regexp.MustCompile(`\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)`)
	opRe   = regexp.MustCompile(`\b[0-9a-f]{16}\b`)
	urlRe  = regexp.MustCompile(`127\.0\.0\.1:\d+`)
)

func normalize(s string) string {
	s = timeRe.ReplaceAllString(s, "TIME")
	s = opRe.ReplaceAllString(s, "OPID")
	return urlRe.ReplaceAllString(s, "127.0.0.1:PORT")
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(want) != got {
		t.Fatalf("output differs from %s (go test -update rewrites it):\n%s", path, diff(string(want), got))
	}
}

func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\nwant %q\ngot  %q", i+1, a, b)
		}
	}
	return ""
}

// TestScenario runs every command against a real core and state store
// (fake Ceph and HIL) and compares the whole transcript with a golden file.
func TestScenario(t *testing.T) {
	e, err := apitest.New(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.CephImage("centos", "centos-9", 2<<30)
	admin := map[string]string{"BMI_URL": e.Server.URL, "HIL_USERNAME": apitest.AdminUser, "HIL_PASSWORD": apitest.AdminPassword}
	alice := map[string]string{"BMI_URL": e.Server.URL, "HIL_USERNAME": apitest.AliceUser, "HIL_PASSWORD": apitest.AlicePassword}
	bob := map[string]string{"BMI_URL": e.Server.URL, "HIL_USERNAME": apitest.BobUser, "HIL_PASSWORD": apitest.BobPassword}
	none := map[string]string{"BMI_URL": e.Server.URL}
	steps := []struct {
		env  map[string]string
		args string
		code int
	}{
		{none, "ls tenant-a", 1},
		{alice, "ls", 2},
		{alice, "ls tenant-a", 0},
		{alice, "-o json ls tenant-a", 0},
		{alice, "-o yaml ls tenant-a", 0},
		{bob, "ls tenant-a", 1},
		{admin, "project ls", 0},
		{admin, "project create tenant-c", 0},
		{admin, "project create tenant-c", 1},
		{alice, "project ls", 1},
		{admin, "import tenant-c centos", 0},
		{admin, "import tenant-c centos --name centos9", 0},
		{admin, "import tenant-c nope", 1},
		{alice, "import tenant-a centos", 1},
		{admin, "cp tenant-c centos tenant-a", 0},
		{admin, "cp tenant-c centos tenant-a c2", 0},
		{alice, "mv tenant-a c2 tenant-a c3", 0},
		{admin, "export tenant-a c3 outside", 0},
		{alice, "rm tenant-a c3", 0},
		{alice, "rm tenant-a c3", 1},
		{alice, "pro tenant-a node1 debian provnet eth0", 1}, // this BMI attaches no network
		{alice, "pro tenant-a node1", 2},
		{alice, "pro tenant-a node1 debian eth0", 0},
		{alice, "pro tenant-a node1 debian eth0", 1},
		{alice, "pro tenant-a node3 debian eth0", 1},
		{alice, "showpro tenant-a", 0},
		{alice, "-o json showpro tenant-a", 0},
		{alice, "snap create tenant-a node1 snap1", 0},
		{alice, "snap ls tenant-a", 0},
		{alice, "-o json snap ls tenant-a", 0},
		{alice, "dpro tenant-a node1 provnet eth0", 1},
		{alice, "dpro tenant-a node1 eth0", 0},
		{alice, "dpro tenant-a node1 eth0", 1},
		{alice, "disk create tenant-a snap1 d1", 0},
		{alice, "disk ls tenant-a", 0},
		{alice, "showdisks tenant-a", 0},
		{alice, "disk show tenant-a d1", 0},
		{alice, "-o json disk show tenant-a d1", 0},
		{alice, "disk sanboot tenant-a d1", 0},
		{alice, "-o json disk sanboot tenant-a d1", 0},
		{alice, "disk sanboot tenant-a nope", 1},
		{bob, "disk sanboot tenant-a d1", 1},
		{alice, "iscsi ls tenant-a", 0},
		{alice, "iscsi rm tenant-a d1", 0},
		{alice, "iscsi ls tenant-a", 0},
		{alice, "iscsi create tenant-a d1", 0},
		{admin, "iscsi ls", 0},
		{alice, "iscsi ls", 1},
		{alice, "boot set tenant-a node2 d1 eth0", 0},
		{alice, "boot show tenant-a node2", 0},
		{alice, "boot ls tenant-a", 0},
		{alice, "node ip tenant-a node2", 1},
		{alice, "node ip tenant-a node2 eth0", 1},
		{alice, "disk rm tenant-a d1", 1},
		{alice, "boot clear tenant-a node2", 0},
		{alice, "boot show tenant-a node2", 1},
		{alice, "disk rm tenant-a d1", 0},
		{alice, "snap rm tenant-a snap1", 0},
		{alice, "snap rm tenant-a debian", 1},
		{admin, "db ls", 0},
		{admin, "db ls -s", 0},
		{admin, "db ls -s -c", 2},
		{admin, "db ls --project tenant-c", 0},
		{admin, "-o json db ls --name centos9", 0},
		{admin, "db rm tenant-c centos9", 0},
		{admin, "op ls --state rolled_back", 0},
		{admin, "op ls --state bogus", 1},
		{admin, "op show 0123456789abcdef", 1},
		{admin, "reconcile", 0},
		{admin, "-o json reconcile", 0},
		{alice, "reconcile", 1},
		{admin, "project rm tenant-c", 1},
		{admin, "project rm tenant-c --force", 0},
		{admin, "project ls", 0},
		{alice, "nosuch", 2},
		{admin, "db create tenant-c img --id 3 --public", 2},
		{admin, "project create tenant-d --id 7", 2},
		{alice, "script run tenant-a debian ./x.sh", 2},
		{alice, "iscsi iscsi_target_info tenant-a node1", 2},
		{alice, "snap nosuch", 2},
		{alice, "-o xml ls tenant-a", 2},
	}
	var transcript strings.Builder
	for i, s := range steps {
		out, errs, code := bmi(s.env, "", strings.Fields(s.args)...)
		fmt.Fprintf(&transcript, "$ bmi %s  [as %s]\n%s", s.args, first(s.env["HIL_USERNAME"], "nobody"), out)
		if errs != "" {
			fmt.Fprintf(&transcript, "stderr: %s", errs)
		}
		fmt.Fprintf(&transcript, "exit %d\n\n", code)
		if code != s.code {
			t.Errorf("step %d: bmi %s: exit %d, want %d\nstdout: %s\nstderr: %s", i, s.args, code, s.code, out, errs)
		}
		if code != 0 && errs == "" {
			t.Errorf("step %d: bmi %s failed without a message on stderr", i, s.args)
		}
	}
	golden(t, "scenario.golden", normalize(transcript.String()))
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestOpShowWait reads an operation an import made.
func TestOpShowWait(t *testing.T) {
	e, err := apitest.New(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	admin := map[string]string{"BMI_URL": e.Server.URL, "HIL_USERNAME": apitest.AdminUser, "HIL_PASSWORD": apitest.AdminPassword}
	out, _, code := bmi(admin, "", "-o", "json", "op", "ls", "--state", "done", "--limit", "1")
	m := regexp.MustCompile(`"id": "([0-9a-f]{16})"`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("op ls: %d %s", code, out)
	}
	for _, cmd := range []string{"show", "wait"} {
		out, errs, code := bmi(admin, "", "op", cmd, m[1])
		if code != 0 || !strings.Contains(out, "import") || !strings.Contains(out, "mark ready") {
			t.Fatalf("op %s: %d %s %s", cmd, code, out, errs)
		}
	}
	golden(t, "op-show.golden", normalize(func() string { o, _, _ := bmi(admin, "", "op", "show", m[1]); return o }()))
}

// TestUploadDownload round-trips a sparse file through upload and
// download, and stdin/stdout.
func TestUploadDownload(t *testing.T) {
	e, err := apitest.New(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	alice := map[string]string{"BMI_URL": e.Server.URL, "HIL_USERNAME": apitest.AliceUser, "HIL_PASSWORD": apitest.AlicePassword}
	dir := t.TempDir()
	data := make([]byte, 1<<20)
	copy(data[300000:], "boot sector")
	copy(data[len(data)-5:], "tail!")
	src := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := bmi(alice, "", "upload", "tenant-a", "up", src); code != 0 || !strings.Contains(out, "1 MiB") {
		t.Fatalf("upload: %d %s %s", code, out, errs)
	}
	dst := filepath.Join(dir, "back.img")
	if _, errs, code := bmi(alice, "", "download", "tenant-a", "up", dst); code != 0 {
		t.Fatalf("download: %d %s", code, errs)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes, differ from the upload (%v)", len(got), err)
	}
	if out, errs, code := bmi(alice, "hello", "upload", "tenant-a", "up2", "-", "--size", "5 B"); code != 0 {
		t.Fatalf("upload stdin: %d %s %s", code, out, errs)
	}
	if out, _, code := bmi(alice, "", "download", "tenant-a", "up2", "-"); code != 0 || out != "hello" {
		t.Fatalf("download stdout: %d %q", code, out)
	}
	for name, args := range map[string][]string{
		"stdin without size": {"upload", "tenant-a", "x", "-"},
		"missing file":       {"upload", "tenant-a", "x", filepath.Join(dir, "nope")},
		"size mismatch":      {"upload", "tenant-a", "x", src, "--size", "1 GiB"},
		"bad size":           {"upload", "tenant-a", "x", "-", "--size", "lots"},
		"exists":             {"upload", "tenant-a", "up", src},
		"download missing":   {"download", "tenant-a", "nope", filepath.Join(dir, "n.img")},
	} {
		if _, errs, code := bmi(alice, "", args...); code == 0 || errs == "" {
			t.Errorf("%s: exit %d", name, code)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "n.img")); err == nil {
		t.Error("a failed download left a file")
	}
}

// TestHelpWithoutEnvironment: --help and completion need no server and no
// credentials (the original needed HIL_USERNAME even for --help).
func TestHelpWithoutEnvironment(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"snap", "--help"}, {"pro", "--help"}, {"completion", "bash"}, {"version"}} {
		out, errs, code := bmi(nil, "", args...)
		if code != 0 || out == "" {
			t.Errorf("bmi %v: exit %d, stderr %s", args, code, errs)
		}
	}
	out, _, _ := bmi(nil, "", "--help")
	golden(t, "help.golden", out)
}

// TestProgressOnTerminal: on a terminal, import and copy run
// asynchronously with a progress bar, uploads and downloads count bytes;
// the results are the same as without.
func TestProgressOnTerminal(t *testing.T) {
	e, err := apitest.New(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.CephImage("centos", "centos-9", 2<<30)
	env := map[string]string{"BMI_URL": e.Server.URL, "HIL_USERNAME": apitest.AdminUser, "HIL_PASSWORD": apitest.AdminPassword}
	run := func(stdin string, args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		root := cli.NewRoot(cli.Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(stdin), Terminal: true,
			Getenv: func(k string) string { return env[k] }})
		code := clikit.Run(context.Background(), root, args, &errb)
		return out.String(), errb.String(), code
	}
	for _, args := range [][]string{
		{"import", "tenant-a", "centos"},
		{"cp", "tenant-a", "centos", "tenant-b", "c2"},
		{"pro", "tenant-a", "node1", "debian", "eth0"},
		{"disk", "create", "tenant-a", "debian", "d9"},
		{"snap", "create", "tenant-a", "debian", "nope"}, // fails: not a disk
		{"upload", "tenant-a", "up", "-", "--size", "4 KiB"},
		{"download", "tenant-a", "up", "-"},
	} {
		stdin := ""
		if args[0] == "upload" {
			stdin = strings.Repeat("z", 4096)
		}
		out, errs, code := run(stdin, args...)
		if wantFail := args[0] == "snap"; (code != 0) != wantFail {
			t.Fatalf("bmi %v: exit %d\n%s\n%s", args, code, out, errs)
		}
		if args[0] == "import" && (!strings.Contains(out, "centos") || !strings.Contains(errs, "import centos")) {
			t.Fatalf("import: stdout %q stderr %q", out, errs)
		}
		if args[0] == "download" && out != strings.Repeat("z", 4096) {
			t.Fatalf("download: %d bytes", len(out))
		}
	}
}

// TestConfigFile: the config file supplies url and credentials; the
// environment and flags win; a readable password file is refused.
func TestConfigFile(t *testing.T) {
	e, err := apitest.New(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "url: "+e.Server.URL+"\nuser: alice\npassword: alicepw\n", 0o600)
	open := write("open.yaml", "url: "+e.Server.URL+"\nuser: alice\npassword: alicepw\n", 0o644)
	nopw := write("nopw.yaml", "url: "+e.Server.URL+"\nuser: alice\n", 0o644)
	bad := write("bad.yaml", "url: x\nusr: alice\n", 0o600)
	cases := map[string]struct {
		env  map[string]string
		args []string
		code int
	}{
		"flag":             {nil, []string{"--config", good, "ls", "tenant-a"}, 0},
		"variable":         {map[string]string{"BMI_CLI_CONFIG": good}, []string{"ls", "tenant-a"}, 0},
		"xdg default":      {map[string]string{"XDG_CONFIG_HOME": dir}, []string{"ls", "tenant-a"}, 1},
		"env wins":         {map[string]string{"BMI_CLI_CONFIG": good, "HIL_USERNAME": "bob", "HIL_PASSWORD": "bobpw"}, []string{"ls", "tenant-a"}, 1},
		"password in env":  {map[string]string{"BMI_CLI_CONFIG": nopw, "HIL_PASSWORD": "alicepw"}, []string{"ls", "tenant-a"}, 0},
		"world readable":   {nil, []string{"--config", open, "ls", "tenant-a"}, 1},
		"unknown key":      {nil, []string{"--config", bad, "ls", "tenant-a"}, 1},
		"missing named":    {nil, []string{"--config", filepath.Join(dir, "nope.yaml"), "ls", "tenant-a"}, 1},
		"help needs none":  {nil, []string{"--config", bad, "--help"}, 0},
		"missing defaults": {map[string]string{"HOME": dir}, []string{"ls", "tenant-a"}, 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, errs, code := bmi(tc.env, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errs)
			}
		})
	}
}

// TestCompletion: arguments complete from bmid (cobra's hidden __complete
// command is what the shell scripts call).
func TestCompletion(t *testing.T) {
	e, err := apitest.New(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	admin := map[string]string{"BMI_URL": e.Server.URL, "HIL_USERNAME": apitest.AdminUser, "HIL_PASSWORD": apitest.AdminPassword}
	cases := map[string]struct {
		args []string
		want string
	}{
		"project":   {[]string{"__complete", "ls", ""}, "tenant-a\n"},
		"image":     {[]string{"__complete", "rm", "tenant-a", ""}, "debian\n"},
		"dest":      {[]string{"__complete", "cp", "tenant-a", "debian", ""}, "tenant-b\n"},
		"too many":  {[]string{"__complete", "ls", "tenant-a", ""}, ":4\n"},
		"file":      {[]string{"__complete", "upload", "tenant-a", "x", ""}, ":0\n"},
		"no server": {[]string{"__complete", "--url", "http://127.0.0.1:1", "ls", ""}, ":4\n"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, errs, code := bmi(admin, "", tc.args...)
			if code != 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d: %q (stderr %q), want %q", code, out, errs, tc.want)
			}
		})
	}
}

// TestTLS: bmi talks https to a bmid whose certificate --ca-cert (or
// BMI_CA_CERT) trusts, and refuses one it does not.
func TestTLS(t *testing.T) {
	e, err := apitest.New(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	srv := httptest.NewTLSServer(e.API.Handler())
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BMI_URL": srv.URL, "HIL_USERNAME": apitest.AliceUser, "HIL_PASSWORD": apitest.AlicePassword}
	if out, errs, code := bmi(env, "", "--ca-cert", ca, "ls", "tenant-a"); code != 0 || !strings.Contains(out, "debian") {
		t.Fatalf("with --ca-cert: %d %s %s", code, out, errs)
	}
	env["BMI_CA_CERT"] = ca
	if _, errs, code := bmi(env, "", "ls", "tenant-a"); code != 0 {
		t.Fatalf("with BMI_CA_CERT: %d %s", code, errs)
	}
	delete(env, "BMI_CA_CERT")
	if _, errs, code := bmi(env, "", "ls", "tenant-a"); code != 1 || !strings.Contains(errs, "certificate") {
		t.Fatalf("untrusted certificate: %d %s", code, errs)
	}
	if _, _, code := bmi(env, "", "--ca-cert", filepath.Join(t.TempDir(), "nope.pem"), "ls", "tenant-a"); code != 1 {
		t.Fatalf("missing CA file: %d", code)
	}
}

// TestReconcileExit: reconcile exits 1 while anything is left, says why in
// its "left" row, and --fix removes an orphan image and exits 0.
func TestReconcileExit(t *testing.T) {
	e, err := apitest.New(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	admin := map[string]string{"BMI_URL": e.Server.URL, "HIL_USERNAME": apitest.AdminUser, "HIL_PASSWORD": apitest.AdminPassword}
	e.CephImage("t1img999", "orphan", 1<<20)
	steps := []struct {
		args     string
		fail     bool // the fake pool's Remove fails
		wantCode int
		wantOut  string
	}{
		{"reconcile", false, 1, "t1img999: not fixed (reconcile --fix removes it)"},
		{"reconcile --fix", true, 1, "t1img999: not removed: "},
		{"reconcile --fix", false, 0, "fixed                 yes"},
		{"reconcile", false, 0, "left                  -"},
	}
	for _, s := range steps {
		if s.fail {
			e.FailCeph("Remove", fault.Errorf(fault.Unavailable, "injected"))
		} else {
			e.FailCeph("Remove", nil)
		}
		out, errs, code := bmi(admin, "", strings.Fields(s.args)...)
		if code != s.wantCode || !strings.Contains(out, s.wantOut) {
			t.Fatalf("bmi %s: exit %d (want %d), output does not contain %q:\n%s%s", s.args, code, s.wantCode, s.wantOut, out, errs)
		}
	}
	if _, ok := e.CephImageData("t1img999"); ok {
		t.Fatal("the orphan image is still in the pool")
	}
}

// TestNodeTimeline reads a node's boot timeline as a table, as JSON, and
// followed until --timeout.
func TestNodeTimeline(t *testing.T) {
	e, err := apitest.New(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	alice := map[string]string{"BMI_URL": e.Server.URL, "HIL_USERNAME": apitest.AliceUser, "HIL_PASSWORD": apitest.AlicePassword}
	bob := map[string]string{"BMI_URL": e.Server.URL, "HIL_USERNAME": apitest.BobUser, "HIL_PASSWORD": apitest.BobPassword}
	if _, errs, code := bmi(alice, "", "pro", "tenant-a", "node2", "debian", "eth0"); code != 0 {
		t.Fatalf("pro: %d %s", code, errs)
	}
	mac, _ := net.ParseMAC("52:54:00:00:00:02")
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	e.Timeline.Record(context.Background(), boot.Event{MAC: mac, At: at, Step: boot.StepScript, Client: boot.ClientIPXE, Detail: "/boot/52-54-00-00-00-02.ipxe"})
	e.Timeline.Record(context.Background(), boot.Event{MAC: mac, At: at.Add(2 * time.Second), Step: boot.StepLogin, Client: boot.ClientOS,
		Remote: "10.0.0.5", Initiator: "iqn.x:node2", Session: "00023d000001"})
	out, errs, code := bmi(alice, "", "node", "timeline", "tenant-a", "node2")
	if code != 0 || !strings.Contains(out, "ipxe-script-served") ||
		!regexp.MustCompile(`iscsi-login\s+os\s+iqn.x:node2 from 10.0.0.5 session 00023d000001`).MatchString(out) {
		t.Fatalf("node timeline: %d\n%s%s", code, out, errs)
	}
	out, _, code = bmi(alice, "", "-o", "json", "node", "timeline", "tenant-a", "node2")
	var tl api.NodeTimeline
	if err := json.Unmarshal([]byte(out), &tl); code != 0 || err != nil || len(tl.Events) != 2 || tl.Events[1].Session != "00023d000001" {
		t.Fatalf("node timeline -o json: %d %v %s", code, err, out)
	}
	out, errs, code = bmi(alice, "", "--timeout", "1500ms", "-o", "json", "node", "timeline", "--follow", "tenant-a", "node2")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"session":"00023d000001"`) {
		t.Fatalf("node timeline --follow: %d, want 2 JSON lines:\n%s%s", code, out, errs)
	}
	if _, errs, code := bmi(bob, "", "node", "timeline", "tenant-a", "node2"); code == 0 || !strings.Contains(errs, "no access") {
		t.Fatalf("bob read tenant-a's node timeline: %d %s", code, errs)
	}
}
