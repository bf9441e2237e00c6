package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/lab"
	"github.com/bmi-go/bmi/lab/image"
	"github.com/bmi-go/bmi/lab/vm"
	"github.com/bmi-go/bmi/service/dhcpd"
	"github.com/bmi-go/bmi/service/logging"
)

// TestUEFIBoot boots, side by side from the same golden image, a BIOS
// node (node-01), a UEFI node that PXE-boots (node-02: OVMF's PXE, TFTP
// snponly.efi) and a UEFI node that HTTP-boots (node-03: OVMF's HTTP boot,
// snponly.efi over HTTP, no TFTP at all), each to its marker from its own
// iSCSI clone: iPXE's sanboot, systemd-boot (UEFI) or SYSLINUX (BIOS) from
// the SAN disk, the kernel, the iBFT (an ACPI table under UEFI) read by
// the initramfs and the second iSCSI login. bmid's log shows each chain;
// `bmi-lab down` removes the UEFI variable stores.
func TestUEFIBoot(t *testing.T) {
	requireSite(t, map[string]string{"ceph-mgr": "ceph-mgr"})
	for f, pkg := range map[string]string{vm.OVMFCode: "ovmf", vm.OVMFVars: "ovmf", image.SystemdBoot: "systemd-boot-efi",
		"/usr/lib/ipxe/" + dhcpd.UEFIBinary: "ipxe"} {
		if _, err := os.Stat(f); err != nil {
			testenv.Missing(t, f, "install the Debian package "+pkg+" (make deps)")
		}
	}
	ctx := context.Background()
	cli, _, dir := newSite(t, "tuefi")

	start := time.Now()
	if out, err := cli("up", "--nodes", "3", "--uefi", "1", "--uefi-http", "1", "--cache", imageCacheDir()); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	t.Logf("bmi-lab up --nodes 3 --uefi 1 --uefi-http 1: %.1f s", time.Since(start).Seconds())
	out, err := cli("nodes")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`node-01\s+\S+\s+bios\s`, `node-02\s+\S+\s+uefi\s`, `node-03\s+\S+\s+uefi-http\s`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Fatalf("bmi-lab nodes lacks %s:\n%s", want, out)
		}
	}
	out, err = cli("env")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		env[k] = strings.Trim(v, "'")
	}
	call := apiCaller(t, env["HIL_USERNAME"], env["HIL_PASSWORD"])
	api, hil := env["BMI_URL"]+"/api/v1/projects/"+env["BMI_PROJECT"], env["BMI_LAB_HIL_URL"]+"/v0"
	l, err := lab.New("tuefi", dir, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		node lab.Node
		iqn  string
		tl   vm.Timeline
		took time.Duration
		err  error
	}
	var res []*result
	for _, name := range []string{"node-01", "node-02", "node-03"} {
		n, err := l.Node(name)
		if err != nil {
			t.Fatal(err)
		}
		d := call("POST", api+"/nodes/"+name+"/provision", `{"image": "`+lab.GoldenImage+`", "nic": "eth0"}`, 201)
		tg, _ := d["target"].(map[string]any)
		iqn, _ := tg["iqn"].(string)
		if iqn == "" {
			t.Fatalf("provision %s: no target IQN: %v", name, d)
		}
		res = append(res, &result{node: n, iqn: iqn})
	}
	// All three at once: the BIOS node costs no wall time beside the
	// UEFI ones (OVMF under TCG is the slow part).
	var wg sync.WaitGroup
	for _, r := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			con := vm.Console{Path: r.node.Serial}
			from, begin := con.Offset(), time.Now()
			if err := post(hil+"/node/"+r.node.Name+"/power_cycle", env["BMI_LAB_HIL_ADMIN"], env["BMI_LAB_HIL_ADMIN_PASSWORD"]); err != nil {
				r.err = err
				return
			}
			r.tl, r.err = con.Timeline(ctx, from, begin, vm.BootMilestones, 10*time.Minute)
			r.took = time.Since(begin)
		}()
	}
	wg.Wait()
	for _, r := range res {
		b, _ := os.ReadFile(r.node.Serial)
		con := strings.ReplaceAll(string(b), "\r", "")
		if r.err != nil {
			tail := con[max(0, len(con)-3000):]
			t.Fatalf("%s (%s): %v\nconsole tail:\n%s", r.node.Name, r.node.Firmware, r.err, tail)
		}
		t.Logf("%s (%s) booted in %.1f s: %v", r.node.Name, r.node.Firmware, r.took.Seconds(), r.tl)
		for _, want := range []string{
			"BMI-LAB-BOOTED " + r.node.Name + " mode=ibft",
			"BMI-LAB-IBFT present:",
			"BMI-LAB-SESSION session1 target=" + r.iqn + " ",
			"BMI-LAB-STATE none",
			"BMI-LAB-WROTE " + r.node.Name + " 1",
			"Registered SAN device",
		} {
			if !strings.Contains(con, want) {
				t.Errorf("%s (%s): console lacks %q", r.node.Name, r.node.Firmware, want)
			}
		}
		var want, not []string
		switch r.node.Firmware {
		case vm.FirmwareUEFI:
			want = []string{">>Start PXE over IPv4", "NBP filename is " + dhcpd.UEFIBinary, "iPXE initialising devices"}
			not = []string{">>Start HTTP Boot", "SeaBIOS"}
		case vm.FirmwareUEFIHTTP:
			want = []string{">>Start HTTP Boot over IPv4", "URI: http://", "/boot/" + dhcpd.UEFIBinary, "iPXE initialising devices"}
			not = []string{">>Start PXE", "SeaBIOS"}
		default:
			want = []string{"SeaBIOS", "SYSLINUX"}
			not = []string{">>Start"}
		}
		for _, w := range want {
			if !strings.Contains(con, w) {
				t.Errorf("%s (%s): console lacks %q", r.node.Name, r.node.Firmware, w)
			}
		}
		for _, w := range not {
			if strings.Contains(con, w) {
				t.Errorf("%s (%s): console has %q", r.node.Name, r.node.Firmware, w)
			}
		}
	}

	// bmid's side of each chain, from its log: what DHCP offered each
	// firmware, and which TFTP transfers went to whom.
	offers, tftp := bmidChain(t, filepath.Join(dir, "bmid.log"))
	for _, r := range res {
		var ip string
		var files []string
		for _, o := range offers[r.node.MAC] {
			files = append(files, o.file)
			ip = o.ip
		}
		t.Logf("%s: dhcp offers %q; tftp to %s: %q", r.node.Name, files, ip, tftp[ip])
		firstFile := ""
		if len(files) > 0 {
			firstFile = files[0]
		}
		switch r.node.Firmware {
		case vm.FirmwareUEFI:
			if firstFile != dhcpd.UEFIBinary || len(tftp[ip]) != 1 || tftp[ip][0] != dhcpd.UEFIBinary {
				t.Errorf("%s: firmware offered %q, tftp %q; want %s over TFTP", r.node.Name, firstFile, tftp[ip], dhcpd.UEFIBinary)
			}
		case vm.FirmwareUEFIHTTP:
			if !strings.HasSuffix(firstFile, "/boot/"+dhcpd.UEFIBinary) || !strings.HasPrefix(firstFile, "http://") || len(tftp[ip]) != 0 {
				t.Errorf("%s: firmware offered %q, tftp %q; want the HTTP URL of %s and no TFTP", r.node.Name, firstFile, tftp[ip], dhcpd.UEFIBinary)
			}
		default:
			// The BIOS machines' ROM is iPXE: straight to its script.
			if !strings.Contains(firstFile, ".ipxe") {
				t.Errorf("%s: first offer %q, want the iPXE script URL", r.node.Name, firstFile)
			}
		}
		if len(files) < 2 && r.node.UEFI() {
			t.Errorf("%s: %d dhcp offers, want the firmware's and iPXE's", r.node.Name, len(files))
		}
	}

	if out, err := cli("down"); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "nvram")); !os.IsNotExist(err) {
		t.Fatalf("down left the UEFI variable stores: %v", err)
	}
}

// post POSTs an empty body as user and wants HTTP 200 (safe off the
// test's goroutine, unlike apiCaller).
func post(url, user, password string) error {
	req, err := http.NewRequest("POST", url, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST %s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	return nil
}

type offer struct{ file, ip string }

// bmidChain reads bmid's JSON log: the DHCP offers per MAC (in order) and
// the files sent by TFTP per client address.
func bmidChain(t *testing.T, path string) (map[string][]offer, map[string][]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	offers, tftp := map[string][]offer{}, map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		s := func(k string) string { v, _ := m[k].(string); return v }
		switch s("msg") {
		case "dhcp offer":
			offers[s("mac")] = append(offers[s("mac")], offer{file: s("file"), ip: s("ip")})
		case "tftp transfer done":
			host, _, _ := strings.Cut(s("client"), ":")
			tftp[host] = append(tftp[host], s("file"))
		}
	}
	return offers, tftp
}
