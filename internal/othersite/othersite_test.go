package othersite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/bmi-go/bmi/internal/cephtest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/cephlab"
	"github.com/bmi-go/bmi/lab/image"
)

// init keeps the main goroutine on the main thread, so that no other
// goroutine runs there: storageLink joins a thread to the machines'
// namespace to open its listeners, and the main thread is the process's
// namespace as far as `ip netns pids` (and so lab.Down, which kills every
// process in the namespace) is concerned.
func init() { runtime.LockOSThread() }

func TestMain(m *testing.M) { os.Exit(cephtest.Main(m)) }

// labName names the machines' lab network (unique among the repository's
// lab tests, so that they may run at once).
const labName = "othsite"

// The site's names, as its operator chose them.
const (
	project     = "ops"
	operator    = "olga"
	admin       = "root-admin"
	bmiUser     = "bmi"
	provNetwork = "provisioning"
	bootImage   = "golden"
	siteName    = "othersite"
)

// Passwords of the site (only in the test's own files and environment).
const (
	adminPassword    = "othersite-admin-pw"
	operatorPassword = "othersite-olga-pw"
	bmiPassword      = "othersite-bmi-pw"
)

// TestBootsOnAnotherSite runs the acceptance suite's boot scenarios with
// bmi-uat on a site that is not the lab. bmid, hil-mock and bmi-uat are
// built binaries run as processes from config files written here, as an
// operator would write them: bmid (in the machines' network namespace, its
// provisioning network on the bridge) on the test Ceph cluster
// (scripts/with-test-ceph.sh's, reached over a relay into the namespace)
// as its own cephx user; hil-mock on the host with an inventory of the
// site's two machines and a drivers file (libvirt power, the bridge's
// ports, serial logs as consoles). The site config states capabilities
// boots and consoles and names no console directory: the suite proves
// each boot through bmid's node timeline (DHCP from iPXE, script, iPXE's
// iSCSI login, the booted OS's login) and reads the consoles through
// hil-mock's console API. The machines are two real QEMU machines of a lab
// network (lab.Build), nothing else of the lab.
func TestBootsOnAnotherSite(t *testing.T) {
	testenv.RequireRoot(t)
	for cmd, pkg := range lab.Commands {
		testenv.RequireCommand(t, cmd, pkg)
	}
	for name, pkg := range image.Tools {
		testenv.RequireCommand(t, name, pkg)
	}
	for cmd, pkg := range map[string]string{"ceph": "ceph-common", "rbd": "ceph-common", "go": "golang (Go 1.26)",
		"iscsi-ls": "libiscsi-bin", "iscsi-readcapacity16": "libiscsi-bin"} {
		testenv.RequireCommand(t, cmd, pkg)
	}
	conf, pool, prefix := cephtest.Pool(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir := t.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "machines.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, nil))
	bin := buildBinaries(t)

	// The machines and their network: two diskless PXE-first QEMU machines.
	takeDownStale(ctx, log)
	l, err := lab.Build(ctx, lab.Options{Name: labName, Dir: filepath.Join(dir, "machines"), Nodes: 2}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(context.Background(), false); err != nil {
			t.Errorf("take the machines down: %v", err)
		}
	})
	storageLink(t, l.Namespace, conf)

	// HIL: hil-mock on the host, from its inventory and drivers files.
	hilAddr := freeAddr(t, l.HostAddr)
	etc := filepath.Join(dir, "etc")
	must(t, os.MkdirAll(etc, 0o755))
	writeTemplate(t, filepath.Join(etc, "hil-inventory.yaml"), inventoryTmpl, map[string]any{
		"Admin": admin, "AdminPW": adminPassword, "BMI": bmiUser, "BMIPW": bmiPassword, "Operator": operator,
		"OperatorPW": operatorPassword, "Project": project, "Net": provNetwork, "VLAN": l.ProvisioningVLAN,
		"Nodes": l.Nodes, "Switch": l.Namespace,
	})
	writeTemplate(t, filepath.Join(etc, "hil-drivers.yaml"), driversTmpl, map[string]any{
		"Socket": l.LibvirtSocket, "Lab": l.Name, "Consoles": filepath.Join(l.Dir, "consoles", "{node}.log"),
	})
	hilURL := "http://" + hilAddr
	daemon(t, "hil-mock", filepath.Join(dir, "hil-mock.log"), filepath.Join(bin, "hil-mock"), "--db", filepath.Join(dir, "hil-mock.db"),
		"serve", "--listen", hilAddr, "--inventory", filepath.Join(etc, "hil-inventory.yaml"), "--drivers", filepath.Join(etc, "hil-drivers.yaml"))
	waitHTTP(t, hilURL+"/v0/projects", filepath.Join(dir, "hil-mock.log"))

	// bmid: its own cephx user, its config file, in the namespace.
	bridge := strings.Split(l.Bridge4, "/")[0]
	pwFile := filepath.Join(etc, "hil-password")
	must(t, os.WriteFile(pwFile, []byte(bmiPassword+"\n"), 0o600))
	keyring := filepath.Join(etc, "ceph.client.bmid-othersite.keyring")
	cephUser := "bmid-" + strings.TrimSuffix(prefix, "-")
	out, err := exec.Command("ceph", append(append([]string{"--conf", conf, "auth", "get-or-create", "client." + cephUser},
		cephlab.BMIDCaps(pool)...), "-o", keyring)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ceph auth get-or-create: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ceph", "--conf", conf, "auth", "del", "client."+cephUser).Run() })
	apiAddr := net.JoinHostPort(l.LabAddr, "8080")
	writeTemplate(t, filepath.Join(etc, "bmid.yaml"), bmidTmpl, map[string]any{
		"UID": strings.TrimSuffix(prefix, "-"), "API": apiAddr, "State": filepath.Join(dir, "bmid.db"), "Conf": conf,
		"CephUser": cephUser, "Keyring": keyring, "Pool": pool, "HIL": "http://" + hilAddr, "BMI": bmiUser, "PWFile": pwFile,
		"Net": provNetwork, "Bridge": bridge, "BridgeIf": l.Bridge, "Prefix": strings.Split(l.Bridge4, "/")[1],
		"Base": bridge[:strings.LastIndex(bridge, ".")+1],
	})
	apiURL := "http://" + apiAddr
	daemon(t, "bmid", filepath.Join(dir, "bmid.log"), "ip", "netns", "exec", l.Namespace, filepath.Join(bin, "bmid"), "serve",
		"--config", filepath.Join(etc, "bmid.yaml"))
	waitHTTP(t, apiURL+"/readyz", filepath.Join(dir, "bmid.log"))
	t.Logf("site up in %.0f s (binaries, machines, hil-mock, bmid)", time.Since(start).Seconds())

	// The operator's project and the bootable image, as an operator makes them.
	call(t, "POST", apiURL+"/api/v1/projects", admin, adminPassword, strings.NewReader(`{"name":"`+project+`"}`), 201)
	img, err := image.Build(ctx, image.Options{CacheDir: filepath.Join(os.TempDir(), "bmi-lab-test-images"), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	call(t, "PUT", apiURL+"/api/v1/projects/"+project+"/images/"+bootImage+"/data", operator, operatorPassword, f, 201, 200)
	f.Close()
	t.Cleanup(func() {
		call(t, "DELETE", apiURL+"/api/v1/projects/"+project+"/images/"+bootImage, operator, operatorPassword, nil, 200, 202, 204)
	})

	// The suite, as the operator runs it on this site.
	configs := filepath.Join(dir, "configs")
	must(t, os.MkdirAll(configs, 0o755))
	writeTemplate(t, filepath.Join(configs, "uat-"+siteName+".yaml"), siteTmpl, map[string]any{
		"Name": siteName, "API": apiURL, "HIL": hilURL, "Admin": admin, "Operator": operator, "Project": project,
		"Nodes": l.Nodes, "Conf": conf, "Pool": pool, "Portal": bridge + ":3260", "NetNS": l.Namespace, "Image": bootImage,
	})
	results := filepath.Join(dir, "results")
	uat := exec.CommandContext(ctx, filepath.Join(bin, "bmi-uat"), "--configs", configs, "--results", results,
		"run", siteName, "--tags", "@boots")
	uat.Env = append(os.Environ(), "OTHERSITE_ADMIN_PASSWORD="+adminPassword, "OTHERSITE_OPERATOR_PASSWORD="+operatorPassword)
	var uatOut bytes.Buffer
	uat.Stdout, uat.Stderr = &uatOut, &uatOut
	suiteStart := time.Now()
	err = uat.Run()
	t.Logf("bmi-uat run %s --tags @boots: %.0f s\n%s", siteName, time.Since(suiteStart).Seconds(), tail(uatOut.String(), 30))
	if err != nil {
		t.Fatalf("bmi-uat run: %v (bmid's log: %s)", err, tailFile(filepath.Join(dir, "bmid.log"), 20))
	}
	checkResults(t, results)
	t.Logf("whole test %.0f s", time.Since(start).Seconds())
}

// checkResults wants the two boot scenarios passed (two nodes booting,
// the second from the first one's snapshot; a node switched to another
// disk booting it), the other @boots ones skipped for the capabilities
// the site does not state (bmid-restart, boot-faults), and for node A and
// node B BMI's timeline with both logins and the console read through HIL
// with the image's marker attached.
func checkResults(t *testing.T, results string) {
	t.Helper()
	runs, _ := filepath.Glob(filepath.Join(results, "*-"+siteName+"-*"))
	if len(runs) != 1 {
		t.Fatalf("want one run directory in %s, got %v", results, runs)
	}
	var sum struct {
		Passed, Failed, Skipped int
		Scenarios               []struct{ Name, Status, Reason string }
	}
	readJSON(t, filepath.Join(runs[0], "summary.json"), &sum)
	// The @boots scenarios this site can run must pass; the others need a
	// capability it does not state (bmid-restart, boot-faults).
	passed := map[string]bool{}
	for _, sc := range sum.Scenarios {
		switch {
		case sc.Status == "passed":
			passed[sc.Name] = true
		case sc.Status != "skipped" || !strings.Contains(sc.Reason, "site "+siteName+" lacks it"):
			t.Errorf("scenario %q: %s (%s); want passed, or skipped for a capability the site lacks", sc.Name, sc.Status, sc.Reason)
		}
	}
	for _, want := range []string{"Nodes boot their disks: the second one from the first one's snapshot",
		"One node, two disks: the node really boots the one its boot config names"} {
		if !passed[want] {
			t.Errorf("scenario %q did not pass", want)
		}
	}
	if sum.Failed != 0 || len(passed) != 2 || t.Failed() {
		t.Fatalf("summary: %+v", sum)
	}
	var features []struct {
		Elements []struct {
			Name  string
			Steps []struct {
				Name       string
				Embeddings []struct {
					Name string
					Data []byte
				}
			}
		}
	}
	readJSON(t, filepath.Join(runs[0], "cucumber.json"), &features)
	att := map[string]string{}
	for _, f := range features {
		for _, e := range f.Elements {
			for _, s := range e.Steps {
				for _, em := range s.Embeddings {
					att[em.Name] += string(em.Data)
				}
			}
		}
	}
	for _, node := range []string{"node-A", "node-B"} {
		tl := att[node+".timeline.txt"]
		for _, want := range []string{"dhcp", "script", "iscsi-login          ipxe", "iscsi-login          os"} {
			if !strings.Contains(tl, want) {
				t.Errorf("%s's boot timeline lacks %q:\n%s", node, want, tl)
			}
		}
		if c := att[node+".console.log"]; !strings.Contains(c, "BMI-LAB-BOOTED") || !strings.Contains(c, "mode=ibft") {
			t.Errorf("%s's console read through HIL lacks the marker BMI-LAB-BOOTED ... mode=ibft:\n%s", node, tail(c, 20))
		}
	}
	if _, err := os.Stat(filepath.Join(runs[0], "consoles")); err == nil {
		t.Errorf("the run has a consoles directory: the site names none, consoles must come through HIL only")
	}
}

// buildBinaries builds bmid (cgo: Ceph), and hil-mock and bmi-uat as
// operators install them (without cgo).
func buildBinaries(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	start := time.Now()
	root := testenv.RepoRoot()
	b := exec.Command("go", "build", "-tags", "pacific,ceph_preview", "-o", bin+"/", "./cmd/bmid")
	b.Dir = root
	if out, err := b.CombinedOutput(); err != nil {
		t.Fatalf("go build bmid: %v\n%s", err, out)
	}
	b = exec.Command("go", "build", "-o", bin+"/", "./cmd/hil-mock", "./cmd/bmi-uat")
	b.Dir, b.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := b.CombinedOutput(); err != nil {
		t.Fatalf("go build hil-mock bmi-uat: %v\n%s", err, out)
	}
	t.Logf("built bmid, hil-mock and bmi-uat in %.0f s", time.Since(start).Seconds())
	return bin
}

// takeDownStale removes the machines a killed run of this test left.
func takeDownStale(ctx context.Context, log *slog.Logger) {
	b, err := os.ReadFile(filepath.Join("/run/bmi-lab", labName+".dir"))
	if err != nil {
		return
	}
	if l, err := lab.New(labName, strings.TrimSpace(string(b)), log); err == nil {
		_ = l.Down(ctx, false)
	}
}

// daemon starts a long-running process with its output in logPath and
// stops it (SIGTERM, then SIGKILL after 30 s) when the test ends.
func daemon(t *testing.T, name, logPath string, argv ...string) {
	t.Helper()
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdout, c.Stderr = lf, lf
	if err := c.Start(); err != nil {
		lf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait(); lf.Close() }()
	t.Cleanup(func() {
		_ = c.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = c.Process.Kill()
			<-done
			t.Errorf("%s did not stop within 30 s of SIGTERM", name)
		}
	})
}

// waitHTTP waits until url answers below 500.
func waitHTTP(t *testing.T, url, logPath string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	for end := time.Now().Add(3 * time.Minute); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
		}
	}
	t.Fatalf("%s did not answer within 3 minutes; log:\n%s", url, tailFile(logPath, 30))
}

// call makes an API call and fails the test unless the status is one of want.
func call(t *testing.T, method, url, user, password string, body io.Reader, want ...int) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	if method == "PUT" {
		req.Header.Set("Content-Type", "application/octet-stream")
		if f, ok := body.(*os.File); ok {
			if st, err := f.Stat(); err == nil {
				req.ContentLength = st.Size()
			}
		}
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, w := range want {
		if resp.StatusCode == w {
			return
		}
	}
	t.Fatalf("%s %s: HTTP %d, want %v: %s", method, url, resp.StatusCode, want, b)
}

func freeAddr(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeTemplate(t *testing.T, path, tmpl string, data any) {
	t.Helper()
	var b bytes.Buffer
	if err := template.Must(template.New(filepath.Base(path)).Parse(tmpl)).Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(path, b.Bytes(), 0o644))
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprint(err)
	}
	return tail(string(b), n)
}
