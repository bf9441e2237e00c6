package dhcpd_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/netnstest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/ipxe"
	"github.com/bmi-go/bmi/service/logging"
)

// TestQEMUProxyDHCP boots QEMU's iPXE ROM on a network where another DHCP
// server (busybox udhcpd, in a namespace of its own) hands out the
// address and ours runs in proxy mode: iPXE takes its address from
// udhcpd, its boot file from our ProxyDHCP answer (ports 67 and 4011), and
// runs the script it names.
func TestQEMUProxyDHCP(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	testenv.RequireCommand(t, "qemu-system-x86_64", "qemu-system-x86")
	testenv.RequireCommand(t, "busybox", "busybox-static")
	if _, err := os.Stat("/usr/lib/ipxe/qemu/pxe-virtio.rom"); err != nil {
		testenv.Missing(t, "iPXE ROMs for QEMU", "install the Debian package ipxe-qemu (make deps)")
	}
	p := netnstest.New(t)
	site := p.Server.Name[:len(p.Server.Name)-2] + "-x" // the site's DHCP server
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", site).Run() })
	for _, s := range [][]string{
		{"netns", "add", site},
		{"-n", p.Server.Name, "link", "add", "bmibr0", "type", "bridge"},
		{"-n", p.Server.Name, "link", "set", "bmibr0", "type", "bridge", "forward_delay", "0", "stp_state", "0"},
		{"-n", p.Server.Name, "addr", "add", "10.199.1.1/24", "dev", "bmibr0"},
		{"-n", p.Server.Name, "tuntap", "add", "dev", "bmitap0", "mode", "tap"},
		{"-n", p.Server.Name, "link", "set", "bmitap0", "master", "bmibr0"},
		{"-n", p.Server.Name, "link", "add", "bmisite0", "type", "veth", "peer", "name", "bmisite1", "netns", site},
		{"-n", p.Server.Name, "link", "set", "bmisite0", "master", "bmibr0"},
		{"-n", site, "addr", "add", "10.199.1.2/24", "dev", "bmisite1"},
		{"-n", site, "link", "set", "lo", "up"},
		{"-n", site, "link", "set", "bmisite1", "up"},
		{"-n", p.Server.Name, "link", "set", "bmisite0", "up"},
		{"-n", p.Server.Name, "link", "set", "bmitap0", "up"},
		{"-n", p.Server.Name, "link", "set", "bmibr0", "up"},
	} {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "udhcpd.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(
		"interface bmisite1\nstart 10.199.1.150\nend 10.199.1.160\nmax_leases 10\noption subnet 255.255.255.0\nlease_file %s/leases\npidfile %s/pid\n",
		dir, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	udhcpd := exec.Command("ip", "netns", "exec", site, "busybox", "udhcpd", "-f", conf)
	if err := udhcpd.Start(); err != nil {
		t.Fatalf("start udhcpd: %v", err)
	}
	t.Cleanup(func() { _ = udhcpd.Process.Kill(); _ = udhcpd.Wait() })

	tl := boot.NewTimeline()
	log := logging.Discard()
	ctx, cancel := context.WithCancel(context.Background())
	// As bmid runs proxy mode by default: no leases to check, so the
	// script is served only with the one-time token of the ProxyDHCP offer.
	tokens := ipxe.NewTokens(nil)
	d := &dhcpd.Server{Interfaces: []string{"bmibr0"}, Mode: dhcpd.ModeProxy, Tokens: tokens,
		BaseURL: "http://10.199.1.1:8080", Nodes: qemuNodes{}, Log: log, Recorder: tl, RouterAdvertisements: true}
	r, err := ipxe.NewRenderer(ipxe.Options{Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	h := &ipxe.Server{Addr: "10.199.1.1:8080", Log: log,
		Handler: &ipxe.Handler{Specs: qemuNodes{}, Renderer: r, Log: log, Recorder: tl, Tokens: tokens}}
	errs := []<-chan error{
		p.Server.Go(func() error { return d.Serve(ctx) }),
		p.Server.Go(func() error { return h.Serve(ctx) }),
	}
	defer func() {
		cancel()
		for _, e := range errs {
			if err := <-e; err != nil {
				t.Errorf("server: %v", err)
			}
		}
	}()
	start := time.Now()
	flat, exited := runQEMU(t, p, "bmitap0", nodeMAC, "")
	if !exited {
		t.Error("QEMU did not end with the script's reboot")
	}
	for _, want := range []string{
		"Filename: http://10.199.1.1:8080/boot/52-54-00-77-00-01.ipxe?token=",
		"BMI: node node1 boots disk disk1",
		"BMI-BOOT-FAILED node node1",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	// The address comes from udhcpd's pool (10.199.1.150-160), not ours.
	if !regexp.MustCompile(`net0: 10\.199\.1\.1(5[0-9]|60)/255\.255\.255\.0`).MatchString(flat) {
		t.Error("console shows no address from udhcpd's pool")
	}
	if t.Failed() {
		t.Logf("console (unwrapped):\n%s", flat)
	}
	var steps []string
	for _, ev := range tl.Events(nodeMAC) {
		steps = append(steps, string(ev.Step))
		t.Logf("timeline +%6.3fs %-20s %s", ev.At.Sub(start).Seconds(), ev.Step, ev.Detail)
	}
	// iPXE takes the file name straight from the ProxyDHCP offer; the
	// port 4011 exchange is covered by TestProxyModeNetns.
	if got := strings.Join(steps, " "); !strings.HasPrefix(got, "dhcp-discover dhcp-offer") || !strings.HasSuffix(got, "ipxe-script-served") {
		t.Errorf("timeline %s, want proxy offers, then the script", got)
	}
}
