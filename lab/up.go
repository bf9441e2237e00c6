package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/bmi-go/bmi/lab/cephlab"
	"github.com/bmi-go/bmi/lab/image"
	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/service/fault"
)

// Ports of the lab's services on the lab end of the host link; BootPort
// is on the provisioning bridge, where nodes fetch their scripts (the API
// does not answer there).
const (
	HILPort = 5000
	APIPort = 8080
	// BootPort is bmid's boot HTTP listener (iPXE scripts) on the bridge.
	BootPort = 8081
)

// BmidCephUser is the cephx user bmid runs as (cephlab.BMIDCaps).
const BmidCephUser = "bmid"

// GoldenImage is the name of the golden image `up` uploads into Project.
const GoldenImage = "golden"

// StayUpImage is the golden image's stay-up variant (lab/image): a node
// booted from it keeps running and verifies its disk (BMI-LAB-IO lines).
const StayUpImage = "golden-stayup"

// UpOptions are Options plus the programs `up` starts.
type UpOptions struct {
	Options
	// Bmid is the bmid binary.
	Bmid string
	// BmiLab is the bmi-lab binary (it serves the lab's hil-mock).
	BmiLab string
	// ImageCache is the golden image cache (default image's).
	ImageCache string
	// IOCheck is the static bmi-lab-io binary the stay-up image carries.
	IOCheck string
}

// services are the processes `up` started, recorded in services.json.
type services struct {
	HIL  proc.ID `json:"hil_mock"`
	Bmid proc.ID `json:"bmid"`
	// BmidBinary is the bmid binary running (a restart starts it again).
	BmidBinary string `json:"bmid_binary"`
	// HILNodes is how many nodes the running hil-mock was seeded with.
	HILNodes int `json:"hil_nodes"`
	// BootFaults says bmid runs (and restarts) with BootFaults on.
	BootFaults bool `json:"boot_faults,omitempty"`
	// Gateways, Postgres and APIProxy are a several-gateway lab's bmid
	// gateways (Bmid is unused), its PostgreSQL and its API proxy.
	Gateways []Gateway `json:"gateways,omitempty"`
	Postgres proc.ID   `json:"postgres,omitempty"`
	APIProxy proc.ID   `json:"api_proxy,omitempty"`
}

func (l *Lab) servicesPath() string { return filepath.Join(l.Dir, "services.json") }

func (l *Lab) loadServices() services {
	var s services
	if b, err := os.ReadFile(l.servicesPath()); err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s
}

func (l *Lab) saveServices(s services) error {
	b, _ := json.Marshal(s)
	return os.WriteFile(l.servicesPath(), b, 0o644)
}

// Up reports whether `up` started the site's services (bmid, hil-mock)
// and they still run.
func (l *Lab) Up() bool {
	s := l.loadServices()
	if len(s.Gateways) > 0 {
		for _, g := range s.Gateways {
			if g.Bmid.Alive() {
				return s.HIL.Alive()
			}
		}
		return false
	}
	return s.Bmid.Alive() && s.HIL.Alive()
}

// Ceph is the lab's Ceph cluster (in the lab namespace, on its loopback).
func (l *Lab) Ceph() (*cephlab.Cluster, error) {
	return cephlab.New(cephlab.Options{Dir: filepath.Join(l.Dir, "ceph"), NetNS: l.Namespace, MonIP: l.cephMonIP(), Log: l.log})
}

// HILURL and APIURL are where the host reaches hil-mock and bmid.
func (l *Lab) HILURL() string { return fmt.Sprintf("http://%s:%d", l.LabAddr, HILPort) }

// APIURL is bmid's API as the host reaches it.
func (l *Lab) APIURL() string { return fmt.Sprintf("http://%s:%d", l.LabAddr, APIPort) }

var bmidConfig = template.Must(template.New("bmid").Parse(`# written by bmi-lab up
uid: lab
admin_project: {{.AdminProject}}
log:
  format: json
  level: info
api:
  listen: {{if .Gateway}}{{.GatewayAPI}}{{else}}{{.LabAddr}}:{{.APIPort}}{{end}}
state:
{{- if .Gateway}}
  engine: postgres
  dsn: "{{.DSN}}"
security:
  # Every gateway seals and unseals the disks' CHAP secrets with this key.
  key_file: {{.Dir}}/bmid/secret.key
gateway:
  id: {{.Gateway}}
  group: {{.Group}}
  lease: {{.Lease}}
  # Its own portal on each network; keepalived moves them to a survivor.
  addresses: [{{range $i, $a := .Addresses}}{{if $i}}, {{end}}"{{$a}}"{{end}}]
{{- else}}
  path: {{.Dir}}/bmid/bmid.db
{{- end}}
ceph:
  conf: {{.CephConf}}
  id: {{.CephID}}
  keyring: {{.Keyring}}
  pool: {{.Pool}}
  # A stopped cluster (the suite's Ceph-down scenario) is reported after
  # this long instead of the default 30 s; the lab's cluster is local.
  op_timeout: 15s
hil:
  url: {{.HILURL}}
  user: {{.HILUser}}
  password_file: {{.HILPasswordFile}}
iscsi:
{{- if .Gateway}}
  # Any address: the floating ones this gateway holds now, and its own.
  listen: ["0.0.0.0:3260"]
{{- else}}
  listen: ["{{.BridgeAddr}}:3260"{{range .Networks}}, "{{.Host}}:3260"{{end}}]
{{- end}}
  portal: {{.BridgeAddr}}:3260
boot:
  http_listen: {{.BridgeAddr}}:{{.BootPort}}
  # Each project gets a provisioning network of its own.
  networks:
{{- range .Networks}}
    - name: {{.Name}}
      vlan: {{.VLAN}}
      interface: vlan{{.VLAN}}
      address: {{.Addr}}
      range_start: {{.RangeStart}}
      range_end: {{.RangeEnd}}
{{- end}}
  dhcp:
    mode: server
  tftp:
    listen: {{.BridgeAddr}}:69
    root: /usr/lib/ipxe
`))

// Up builds the whole site: Build, then Ceph, hil-mock and bmid in the lab
// namespace, then the golden image uploaded through bmid's API into
// Project. It is idempotent: running parts are kept.
func Up(ctx context.Context, o UpOptions, logger *slog.Logger) (*Lab, error) {
	log := logger.Info
	for _, p := range []string{o.Bmid, o.BmiLab, o.IOCheck} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("program %q: %w (build it with make build)", p, fault.ErrNotFound)
		}
	}
	l, err := Build(ctx, o.Options, logger)
	if err != nil {
		return nil, err
	}
	log("network, libvirtd and machines ready", "nodes", len(l.Nodes))
	if l.Gateways > 1 {
		if err := l.gatewayNetUp(ctx); err != nil {
			return nil, err
		}
	}
	ceph, err := l.Ceph()
	if err != nil {
		return nil, err
	}
	if err := ceph.Start(ctx); err != nil {
		return nil, fmt.Errorf("lab %q: ceph: %w", l.Name, err)
	}
	log("ceph healthy", "conf", ceph.ConfPath())
	svc := l.loadServices()
	if svc.HIL.Alive() && svc.HILNodes != len(l.Nodes) {
		// The node set changed: restart hil-mock so that it seeds the new ones.
		if err := svc.HIL.Stop(ctx, 30*time.Second); err != nil {
			return nil, fmt.Errorf("lab %q: restart hil-mock: %w", l.Name, err)
		}
	}
	if err := l.StartHIL(ctx, o.BmiLab); err != nil {
		return nil, err
	}
	svc = l.loadServices() // StartHIL recorded hil-mock's process
	log("hil-mock serving", "url", l.HILURL())
	if l.Gateways > 1 {
		if err := l.upGateways(ctx, o, ceph); err != nil {
			return nil, err
		}
		log("gateways ready", "gateways", l.Gateways, "url", l.APIURL())
	} else if !svc.Bmid.Alive() {
		if err := l.writeBmidConfig(ctx, l.bmidConfPath(), ceph, 0); err != nil {
			return nil, err
		}
		if svc.Bmid, err = l.startBmid(o.Bmid, svc.BootFaults); err != nil {
			return nil, err
		}
		svc.BmidBinary = o.Bmid
		if err := l.saveServices(svc); err != nil {
			return nil, err
		}
	}
	if l.Gateways <= 1 {
		if err := waitHTTP(ctx, l.APIURL()+"/readyz", svc.Bmid, filepath.Join(l.Dir, "bmid.log")); err != nil {
			return nil, fmt.Errorf("lab %q: bmid: %w", l.Name, err)
		}
		log("bmid ready", "url", l.APIURL())
	}
	if err := l.importGolden(ctx, GoldenImage, image.Options{CacheDir: o.ImageCache, Log: l.log}); err != nil {
		return nil, err
	}
	if err := l.importGolden(ctx, StayUpImage, image.Options{CacheDir: o.ImageCache, Log: l.log, StayUp: true, IOCheck: o.IOCheck}); err != nil {
		return nil, err
	}
	log("golden images in BMI", "project", Project, "images", GoldenImage+" "+StayUpImage)
	return l, nil
}

// StartHIL starts the lab's hil-mock (bmiLab hil-serve in the lab's
// namespace, on the same address and database as before) unless it runs,
// and waits until it answers.
func (l *Lab) StartHIL(ctx context.Context, bmiLab string) error {
	svc := l.loadServices()
	if !svc.HIL.Alive() {
		argv := []string{"ip", "netns", "exec", l.Namespace, bmiLab, "hil-serve", "--name", l.Name, "--dir", l.Dir,
			"--listen", fmt.Sprintf("%s:%d", l.LabAddr, HILPort)}
		var err error
		if svc.HIL, err = proc.StartDaemon(argv, nil, filepath.Join(l.Dir, "hil-mock.log")); err != nil {
			return err
		}
		svc.HILNodes = len(l.Nodes)
		if err := l.saveServices(svc); err != nil {
			return err
		}
	}
	if err := waitHTTP(ctx, l.HILURL()+"/v0/projects", svc.HIL, filepath.Join(l.Dir, "hil-mock.log")); err != nil {
		return fmt.Errorf("lab %q: hil-mock: %w", l.Name, err)
	}
	return nil
}

// StopHIL stops the lab's hil-mock (its state stays in its database):
// HIL is down for bmid until StartHIL.
func (l *Lab) StopHIL(ctx context.Context) error {
	svc := l.loadServices()
	if err := svc.HIL.Stop(ctx, 30*time.Second); err != nil {
		return fmt.Errorf("lab %q: stop hil-mock: %w", l.Name, err)
	}
	return nil
}

// writeBmidConfig writes the bmid.yaml of the lab's bmid (gw 0) or of
// gateway gw of a several-gateway lab.
func (l *Lab) writeBmidConfig(ctx context.Context, path string, ceph *cephlab.Cluster, gw int) error {
	if err := os.MkdirAll(filepath.Join(l.Dir, "bmid"), 0o755); err != nil {
		return err
	}
	creds, err := l.Credentials()
	if err != nil {
		return err
	}
	pwFile := filepath.Join(l.Dir, "bmid", "hil-password")
	if err := os.WriteFile(pwFile, []byte(creds.HILBMI+"\n"), 0o600); err != nil {
		return err
	}
	// bmid runs as its own least-privileged cephx user, not client.admin.
	keyring, err := ceph.EnsureClient(ctx, BmidCephUser, cephlab.BMIDCaps(ceph.Pool()))
	if err != nil {
		return err
	}
	for _, n := range ProjectNetworks {
		if gw > 0 {
			break // the gateways' namespaces hold the networks' addresses (gatewayNetUp)
		}
		if err := l.net.AddNetwork(ctx, n.VLAN, n.Addr); err != nil {
			return err
		}
	}
	if err := l.net.AddFoothold(ctx, ProjectNetworks[0].VLAN, FootholdAddr); err != nil {
		return err
	}
	data := bmidConfigData(l.LabAddr, l.Dir, strings.Split(l.Bridge4, "/")[0], pwFile, ceph.ConfPath(), keyring,
		ceph.Pool(), l.HILURL())
	if gw > 0 {
		l.gatewayConfigData(data, gw)
	}
	var b bytes.Buffer
	err = bmidConfig.Execute(&b, data)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// waitHTTP waits until url answers 2xx/4xx (the server is up), failing
// early if the process died.
func waitHTTP(ctx context.Context, url string, id proc.ID, logPath string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	for end := time.Now().Add(90 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if !id.Alive() {
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("exited: %s (see %s): %w", lastLines(string(b), 3), logPath, fault.ErrUnavailable)
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("%s did not answer within 90 s (see %s): %w", url, logPath, fault.ErrUnavailable)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// api calls bmid's API as user with password.
func (l *Lab) api(ctx context.Context, method, path, user, password string, body io.Reader, size int64) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, l.APIURL()+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(user, password)
	if size >= 0 {
		req.ContentLength = size
	}
	if method != http.MethodPut {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// importGolden makes sure BMI has the lab's projects (Project and the
// second tenant's OtherProject), then builds a golden image and uploads it
// through bmid's API into Project as name, as an operator would; an image
// already there is kept.
func (l *Lab) importGolden(ctx context.Context, name string, opts image.Options) error {
	cred, err := l.Credentials()
	if err != nil {
		return err
	}
	for _, p := range []string{Project, OtherProject} {
		code, b, err := l.api(ctx, "POST", "/api/v1/projects", HILAdmin, cred.HILAdmin, strings.NewReader(`{"name":"`+p+`"}`), -1)
		if err != nil {
			return fmt.Errorf("lab %q: create project: %w", l.Name, err)
		}
		if code != http.StatusCreated && code != http.StatusConflict {
			return fmt.Errorf("lab %q: create project %s: HTTP %d: %s", l.Name, p, code, b)
		}
	}
	code, _, err := l.api(ctx, "GET", "/api/v1/projects/"+Project+"/images/"+name, HILUser, cred.HILUser, nil, -1)
	if err == nil && code == http.StatusOK {
		return nil
	}
	img, err := image.Build(ctx, opts)
	if err != nil {
		return err
	}
	f, err := os.Open(img.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, _ := f.Stat()
	code, b, err := l.api(ctx, "PUT", "/api/v1/projects/"+Project+"/images/"+name+"/data", HILUser, cred.HILUser, f, st.Size())
	if err != nil {
		return fmt.Errorf("lab %q: upload image %s: %w", l.Name, name, err)
	}
	if code/100 != 2 {
		return fmt.Errorf("lab %q: upload image %s: HTTP %d: %s", l.Name, name, code, b)
	}
	return nil
}

// stopServices stops bmid, hil-mock and Ceph (purging its data unless
// keepData).
func (l *Lab) stopServices(ctx context.Context, keepData bool) error {
	var errs []error
	svc := l.loadServices()
	ids := []proc.ID{svc.Bmid, svc.APIProxy}
	for _, g := range svc.Gateways {
		if g.Bmid.Alive() {
			_ = syscall.Kill(g.Bmid.Pid, syscall.SIGCONT) // a paused one stops only once resumed
		}
		ids = append(ids, g.Bmid, g.Keepalived)
	}
	for _, id := range append(ids, svc.HIL, svc.Postgres) {
		if err := id.Stop(ctx, 30*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if !keepData && len(errs) == 0 {
		if err := l.purgePostgres(); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat(filepath.Join(l.Dir, "ceph")); err == nil {
		ceph, err := l.Ceph()
		if err == nil {
			if keepData {
				err = ceph.Stop(ctx)
			} else {
				err = ceph.Purge(ctx)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("lab %q: ceph: %w", l.Name, err))
		}
	}
	if len(errs) == 0 {
		_ = os.Remove(l.servicesPath())
	}
	return errors.Join(errs...)
}

// bmidConfigData is what the bmid.yaml template is filled with.
func bmidConfigData(labAddr, dir, bridgeAddr, pwFile, cephConf, keyring, pool, hilURL string) map[string]any {
	var nets []map[string]any
	for _, n := range ProjectNetworks {
		base := n.Addr.Masked().Addr().As4()
		at := func(last byte) string { return netip.AddrFrom4([4]byte{base[0], base[1], base[2], last}).String() }
		nets = append(nets, map[string]any{"Name": n.Name, "VLAN": n.VLAN, "Addr": n.Addr.String(), "Host": n.Addr.Addr().String(),
			"RangeStart": at(100), "RangeEnd": at(199)})
	}
	return map[string]any{
		"HILUser": HILBMIUser, "HILPasswordFile": pwFile,
		"AdminProject": AdminProject, "APIPort": APIPort, "BootPort": BootPort, "LabAddr": labAddr, "Dir": dir, "CephConf": cephConf,
		"CephID": BmidCephUser, "Keyring": keyring, "Pool": pool, "HILURL": hilURL, "BridgeAddr": bridgeAddr, "Networks": nets,
	}
}
