package dhcpd_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/netnstest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/ipxe"
	"github.com/bmi-go/bmi/service/logging"
	"github.com/bmi-go/bmi/service/tftpd"
)

var nodeMAC = net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 1}

// bootConfigs knows one node: node1 on nodeMAC.
type bootConfigs struct{}

func (bootConfigs) BootNode(_ context.Context, mac net.HardwareAddr) (string, error) {
	if mac.String() == nodeMAC.String() {
		return "node1", nil
	}
	return "", fault.Errorf(fault.NotFound, "no boot config for %s", mac)
}

func (bootConfigs) BootSpec(_ context.Context, mac net.HardwareAddr) (ipxe.Spec, error) {
	if mac.String() != nodeMAC.String() {
		return ipxe.Spec{}, fault.Errorf(fault.NotFound, "no boot config for %s", mac)
	}
	return ipxe.Spec{Node: "node1", Disk: "disk1", Portal: "10.199.0.1", LUN: 1,
		TargetIQN: "iqn.2026-11.org.bmi:test.1", InitiatorIQN: "iqn.2026-11.org.bmi:node1",
		CHAP: &ipxe.CHAP{User: "node1", Secret: "chap-secret-1"}}, nil
}

// udhcpcScript records each event's environment and configures the
// address on "bound", as a firmware would.
const udhcpcScript = `#!/bin/sh
env | grep -E "^(ip|bootfile|siaddr|serverid|hostname|mask|subnet|router|lease|interface|opt[0-9]+)=" | sort > "$OUT/$1.env"
if [ "$1" = bound ]; then ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface"; fi
exit 0
`

type bootLab struct {
	p        *netnstest.Pair
	tl       *boot.Timeline
	dir      string
	baseURL  string
	leases   *dhcpd.MemoryLeases
	cancel   context.CancelFunc
	errs     []<-chan error
	kpxePath string
	obs      *dhcpCounts
}

// startLab runs DHCP, TFTP and the iPXE script server inside the server
// namespace of a fresh pair.
func startLab(t *testing.T) *bootLab {
	t.Helper()
	return startLabWith(t, func(*dhcpd.Server) {})
}

// startLabWith is startLab with a change to the DHCP server's settings.
func startLabWith(t *testing.T, tweak func(*dhcpd.Server)) *bootLab {
	t.Helper()
	testenv.RequireCommand(t, "udhcpc", "udhcpc")
	p := netnstest.New(t)
	l := &bootLab{p: p, tl: boot.NewTimeline(), dir: t.TempDir(), leases: dhcpd.NewMemoryLeases(),
		baseURL: "http://10.199.0.1:8080", kpxePath: "/usr/lib/ipxe/undionly.kpxe", obs: &dhcpCounts{m: map[string]int{}}}
	if err := os.WriteFile(filepath.Join(l.dir, "script"), []byte(udhcpcScript), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	log := logging.Discard()
	if testing.Verbose() {
		if vlog, err := logging.New(os.Stderr, logging.Options{Format: "text", Level: "debug"}); err == nil {
			log = vlog
		}
	}
	d := &dhcpd.Server{
		Interfaces: []string{p.Server.Iface},
		Pool: dhcpd.Pool{Start: net.IPv4(10, 199, 0, 100), End: net.IPv4(10, 199, 0, 120),
			Netmask: net.CIDRMask(24, 32), LeaseTime: 10 * time.Minute},
		BaseURL: l.baseURL, Nodes: bootConfigs{}, Leases: l.leases, Log: log.With("svc", "dhcp"), Recorder: l.tl,
		Observer: l.obs,
	}
	tweak(d)
	tf := &tftpd.Server{Addr: "10.199.0.1:69", Root: "/usr/lib/ipxe", Log: log.With("svc", "tftp"),
		Recorder: l.tl, Clients: d}
	r, err := ipxe.NewRenderer(ipxe.OptionsFromConfig(config.Default().Boot.IPXE))
	if err != nil {
		t.Fatal(err)
	}
	h := &ipxe.Server{Addr: "10.199.0.1:8080", Log: log.With("svc", "http"),
		Handler: &ipxe.Handler{Specs: bootConfigs{}, Renderer: r, Log: log.With("svc", "http"), Recorder: l.tl,
			Clients: d, RequireLease: true}}
	l.errs = append(l.errs,
		p.Server.Go(func() error { return d.Serve(ctx) }),
		p.Server.Go(func() error { return tf.Serve(ctx) }),
		p.Server.Go(func() error { return h.Serve(ctx) }))
	t.Cleanup(l.stop(t))
	return l
}

func (l *bootLab) stop(t *testing.T) func() {
	return func() {
		l.cancel()
		for _, e := range l.errs {
			select {
			case err := <-e:
				if err != nil {
					t.Errorf("server stopped with %v, want nil", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("a server did not stop within 15 s of cancel")
			}
		}
	}
}

func (l *bootLab) setMAC(t *testing.T, mac net.HardwareAddr) {
	t.Helper()
	if out, err := l.p.Client.Command(context.Background(), "ip", "link", "set", "dev", l.p.Client.Iface, "address", mac.String()).CombinedOutput(); err != nil {
		t.Fatalf("set client MAC: %v: %s", err, out)
	}
}

// udhcpc runs busybox udhcpc once in the client namespace with extra
// options; it returns the environment of the "bound" event, or nil when
// no lease was obtained.
func (l *bootLab) udhcpc(t *testing.T, extra ...string) map[string]string {
	return l.udhcpcTries(t, 4, extra...)
}

// udhcpcTries is udhcpc with a number of DISCOVERs one second apart (for
// the cases that expect no answer).
func (l *bootLab) udhcpcTries(t *testing.T, tries int, extra ...string) map[string]string {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"-f", "-q", "-n", "-t", fmt.Sprint(tries), "-T", "1", "-i", l.p.Client.Iface, "-s", filepath.Join(l.dir, "script"), "-O", "175"}, extra...)
	cmd := l.p.Client.Command(ctx, "udhcpc", args...)
	cmd.Env = append(cmd.Env, "OUT="+out)
	outb, err := cmd.CombinedOutput()
	env, rerr := os.ReadFile(filepath.Join(out, "bound.env"))
	if err != nil || rerr != nil {
		t.Logf("udhcpc %v: %v; output:\n%s", extra, err, outb)
		return nil
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(env))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m
}

const (
	optBIOS      = "0x5d:0000"
	optUEFI      = "0x5d:0007"
	optUEFIHTTP  = "0x5d:0010"
	optARM64     = "0x5d:000b"
	optARM64HTTP = "0x5d:0013"
	optIPXE      = "0x4d:69505845" // user class "iPXE", raw as iPXE sends it
)

// TestRealUdhcpc: busybox udhcpc against our DHCP server across a veth
// pair, with each client architecture and as iPXE.
func TestRealUdhcpc(t *testing.T) {
	l := startLab(t)
	l.setMAC(t, nodeMAC)
	tests := map[string]struct {
		opts []string
		file string // "" = no lease expected
		opt  string // expected opt175 (iPXE only)
	}{
		"bios":       {[]string{"-x", optBIOS}, "undionly.kpxe", ""},
		"uefi":       {[]string{"-x", optUEFI}, "snponly.efi", ""},
		"uefi http":  {[]string{"-x", optUEFIHTTP}, "http://10.199.0.1:8080/boot/snponly.efi", ""},
		"ipxe":       {[]string{"-x", optBIOS, "-x", optIPXE}, "http://10.199.0.1:8080/boot/52-54-00-77-00-01.ipxe", "b00101"},
		"arm64":      {[]string{"-x", optARM64}, "", ""},
		"arm64 http": {[]string{"-x", optARM64HTTP, "-V", "HTTPClient:Arch:00019:UNDI:003001"}, "", ""},
	}
	for _, name := range []string{"bios", "uefi", "uefi http", "ipxe", "arm64", "arm64 http"} {
		tc := tests[name]
		t.Run(name, func(t *testing.T) {
			tries := 4
			if tc.file == "" {
				tries = 2
			}
			env := l.udhcpcTries(t, tries, tc.opts...)
			if tc.file == "" {
				if env != nil {
					t.Fatalf("got a lease for an unsupported architecture: %v", env)
				}
				return
			}
			if env == nil {
				t.Fatal("udhcpc got no lease")
			}
			ip := net.ParseIP(env["ip"])
			if ip == nil || !strings.HasPrefix(env["ip"], "10.199.0.") || env["bootfile"] != tc.file || env["siaddr"] != "10.199.0.1" || env["serverid"] != "10.199.0.1" {
				t.Fatalf("lease ip=%s bootfile=%q siaddr=%s serverid=%s, want bootfile %q from 10.199.0.1", env["ip"], env["bootfile"], env["siaddr"], env["serverid"], tc.file)
			}
			if env["hostname"] != "node1" || env["mask"] != "24" {
				t.Errorf("hostname %q mask %q", env["hostname"], env["mask"])
			}
			if env["opt175"] != tc.opt {
				t.Errorf("option 175 = %q, want %q", env["opt175"], tc.opt)
			}
			lease, err := l.leases.Get(context.Background(), nodeMAC)
			if err != nil || !lease.IP.Equal(ip) {
				t.Errorf("lease table has %+v, %v; want %s", lease, err, ip)
			}
		})
	}
	t.Run("an interface not configured is not served", func(t *testing.T) {
		srv, cli := "bts2"+l.p.Client.Iface[3:7], "btc2"+l.p.Client.Iface[3:7]
		for _, s := range [][]string{
			{"-n", l.p.Server.Name, "link", "add", srv, "type", "veth", "peer", "name", cli, "netns", l.p.Client.Name},
			{"-n", l.p.Server.Name, "addr", "add", "10.199.2.1/24", "dev", srv},
			{"-n", l.p.Server.Name, "link", "set", srv, "up"},
			{"-n", l.p.Client.Name, "link", "set", cli, "address", nodeMAC.String(), "up"},
		} {
			if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v: %s", strings.Join(s, " "), err, out)
			}
		}
		args := []string{"-f", "-q", "-n", "-t", "2", "-T", "1", "-i", cli, "-s", filepath.Join(l.dir, "script"), "-x", optBIOS}
		cmd := l.p.Client.Command(context.Background(), "udhcpc", args...)
		cmd.Env = append(cmd.Env, "OUT="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("udhcpc got a lease on an interface the server is not configured for: %s", out)
		}
	})
	t.Run("unknown mac is ignored", func(t *testing.T) {
		l.setMAC(t, net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 0x99})
		defer l.setMAC(t, nodeMAC)
		if env := l.udhcpcTries(t, 2, "-x", optBIOS); env != nil {
			t.Fatalf("a MAC without a boot config got a lease: %v", env)
		}
	})
	// The observer (bmid's metrics) heard the four leases and why the
	// other packets went unanswered.
	for k, min := range map[string]int{"reply offer": 4, "reply ack": 4, "ignored no_boot_file": 1, "ignored unknown_mac": 1} {
		if n := l.obs.get(k); n < min {
			t.Errorf("observer heard %q %d times, want >= %d (all: %v)", k, n, min, l.obs.all())
		}
	}
}

// dhcpCounts counts what a dhcpd.Observer hears.
type dhcpCounts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *dhcpCounts) Reply(t string) { c.add("reply " + t) }

func (c *dhcpCounts) Ignored(r string) { c.add("ignored " + r) }

func (c *dhcpCounts) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[k]++
}

func (c *dhcpCounts) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *dhcpCounts) all() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

// TestRealBootChain walks the chain a BIOS node takes, with real clients:
// udhcpc as the PXE ROM (option 93 BIOS), tftp-hpa fetching the binary it
// was told, udhcpc as iPXE (user class iPXE), curl fetching the script it
// was told. It logs the node's boot timeline.
func TestRealBootChain(t *testing.T) {
	testenv.RequireCommand(t, "tftp", "tftp-hpa")
	testenv.RequireCommand(t, "curl", "curl")
	if _, err := os.Stat("/usr/lib/ipxe/undionly.kpxe"); err != nil {
		testenv.Missing(t, "/usr/lib/ipxe/undionly.kpxe", "install the Debian package ipxe (make deps)")
	}
	l := startLab(t)
	l.setMAC(t, nodeMAC)
	ctx := context.Background()

	pxe := l.udhcpc(t, "-x", optBIOS)
	if pxe == nil || pxe["bootfile"] != "undionly.kpxe" {
		t.Fatalf("PXE DHCP: %v", pxe)
	}
	local := filepath.Join(l.dir, "fetched.kpxe")
	if out, err := l.p.Client.Command(ctx, "tftp", "-m", "binary", pxe["siaddr"], "-c", "get", pxe["bootfile"], local).CombinedOutput(); err != nil {
		t.Fatalf("tftp get %s from %s: %v: %s", pxe["bootfile"], pxe["siaddr"], err, out)
	}
	got, _ := os.ReadFile(local)
	want, _ := os.ReadFile(l.kpxePath)
	if !bytes.Equal(got, want) {
		t.Fatalf("fetched %d bytes, not identical to %s (%d bytes)", len(got), l.kpxePath, len(want))
	}

	ipxeEnv := l.udhcpc(t, "-x", optBIOS, "-x", optIPXE)
	if ipxeEnv == nil || ipxeEnv["ip"] != pxe["ip"] {
		t.Fatalf("iPXE DHCP: %v, want the same address %s", ipxeEnv, pxe["ip"])
	}
	script, err := l.p.Client.Command(ctx, "curl", "-sS", "--fail", "--max-time", "20", ipxeEnv["bootfile"]).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", ipxeEnv["bootfile"], err)
	}
	for _, line := range []string{"#!ipxe", "set username node1", "sanboot --keep iscsi:10.199.0.1::3260:1:iqn.2026-11.org.bmi:test.1 || goto attempt-failed"} {
		if !bytes.Contains(script, []byte(line+"\n")) {
			t.Errorf("script lacks %q:\n%s", line, script)
		}
	}
	// The script (with its CHAP secret) goes only to the lease holder.
	if out, err := l.p.Client.Command(ctx, "ip", "addr", "add", "10.199.0.250/24", "dev", l.p.Client.Iface).CombinedOutput(); err != nil {
		t.Fatalf("second client address: %v: %s", err, out)
	}
	code, err := l.p.Client.Command(ctx, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20",
		"--interface", "10.199.0.250", ipxeEnv["bootfile"]).Output()
	if err != nil || string(code) != "403" {
		t.Errorf("script fetched from an address without the lease: %v, status %s, want 403", err, code)
	}
	// A MAC without a boot config gets the script that says so.
	noConf, err := l.p.Client.Command(ctx, "curl", "-sS", "--fail", "--max-time", "20", "http://10.199.0.1:8080/boot/52-54-00-77-00-99.ipxe").Output()
	if err != nil || !bytes.Contains(noConf, []byte("BMI-NO-BOOT-CONFIG 52:54:00:77:00:99")) {
		t.Errorf("no-config script: %v: %s", err, noConf)
	}

	var evs []boot.Event
	wantSteps := []boot.Step{boot.StepDiscover, boot.StepOffer, boot.StepAck, boot.StepBinary,
		boot.StepDiscover, boot.StepOffer, boot.StepAck, boot.StepScript}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if evs = l.tl.Events(nodeMAC); len(evs) >= len(wantSteps) {
			break
		}
	}
	var steps []string
	var b strings.Builder
	for _, ev := range evs {
		steps = append(steps, string(ev.Step))
		fmt.Fprintf(&b, "\n  +%7.3fs  %-20s %s", ev.At.Sub(evs[0].At).Seconds(), ev.Step, ev.Detail)
	}
	t.Logf("boot timeline of %s:%s", nodeMAC, b.String())
	var wantS []string
	for _, s := range wantSteps {
		wantS = append(wantS, string(s))
	}
	if strings.Join(steps, " ") != strings.Join(wantS, " ") {
		t.Errorf("timeline steps\n  %s\nwant\n  %s", strings.Join(steps, " "), strings.Join(wantS, " "))
	}
}
