package dhcpd_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/netnstest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/ipxe"
	"github.com/bmi-go/bmi/service/logging"
)

// bootSector prints BMI-DISK-BOOTED through the BIOS and halts.
func bootSector() []byte {
	code := []byte{
		0xFC,       // cld
		0x31, 0xC0, // xor ax, ax
		0x8E, 0xD8, // mov ds, ax
		0x31, 0xDB, // xor bx, bx
		0xBE, 0x18, 0x7C, // mov si, 0x7C18 (the message)
		0xB4, 0x0E, // mov ah, 0x0E (teletype)
		0xAC,       // lodsb
		0x08, 0xC0, // or al, al
		0x74, 0x04, // jz halt
		0xCD, 0x10, // int 0x10
		0xEB, 0xF5, // jmp back to mov ah
		0xF4,       // halt: hlt
		0xEB, 0xFD, // jmp halt
	}
	s := make([]byte, 512)
	copy(s, code)
	copy(s[len(code):], "BMI-DISK-BOOTED\r\n\x00")
	s[510], s[511] = 0x55, 0xAA
	return s
}

// chapSpecs boots nodeMAC from the tgtd target with the given CHAP.
type chapSpecs struct {
	qemuNodes
	chap *ipxe.CHAP
}

func (c chapSpecs) BootSpec(_ context.Context, mac net.HardwareAddr) (ipxe.Spec, error) {
	if mac.String() != nodeMAC.String() {
		return ipxe.Spec{}, fault.Errorf(fault.NotFound, "no boot config for %s", mac)
	}
	return ipxe.Spec{Node: "node1", Disk: "disk1", Portal: "10.199.1.1", LUN: 1,
		TargetIQN: "iqn.2026-11.org.bmi:test.1", InitiatorIQN: "iqn.2026-11.org.bmi:node1", CHAP: c.chap}, nil
}

// TestQEMUSanbootCHAP boots QEMU's iPXE ROM all the way to its disk: DHCP,
// the script over HTTP, an iSCSI login with CHAP (user and secret in the
// script's :hex form, plus mutual CHAP) to a tgtd target in the test's
// namespace, and the disk's boot sector, which prints a marker. With a
// wrong secret the login is refused and the script ends in its failure
// message.
func TestQEMUSanbootCHAP(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs")
	}
	testenv.RequireCommand(t, "tgtd", "tgt")
	testenv.RequireCommand(t, "tgtadm", "tgt")
	p, tap := vmSite(t, "bmitap0")
	startTGT(t, p)

	user, secret := "node one", "p$a{s}s w0rd"
	for _, tc := range []struct {
		name   string
		chap   *ipxe.CHAP
		booted bool
	}{
		{"chap", &ipxe.CHAP{User: user, Secret: logging.Secret(secret), MutualUser: "target1", MutualSecret: "back-secret-1"}, true},
		{"wrong secret", &ipxe.CHAP{User: user, Secret: "wrong-secret-9"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := boot.NewTimeline()
			log := logging.Discard()
			ctx, cancel := context.WithCancel(context.Background())
			d := vmDHCP(tap, tl, log)
			r, err := ipxe.NewRenderer(ipxe.Options{Attempts: 2, FirstDelay: 1})
			if err != nil {
				t.Fatal(err)
			}
			h := &ipxe.Server{Addr: "10.199.1.1:8080", Log: log,
				Handler: &ipxe.Handler{Specs: chapSpecs{chap: tc.chap}, Renderer: r, Log: log, Recorder: tl}}
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
			until := ""
			if tc.booted {
				until = "BMI-DISK-BOOTED"
			}
			flat, _ := runQEMU(t, p, tap, nodeMAC, until)
			t.Logf("QEMU ran %.1f s", time.Since(start).Seconds())
			if tc.booted {
				for _, want := range []string{"Registered SAN device", "BMI-DISK-BOOTED"} {
					if !strings.Contains(flat, want) {
						t.Errorf("console lacks %q", want)
					}
				}
				if strings.Contains(flat, "BMI-BOOT-FAILED") {
					t.Error("the script reported a failure")
				}
			} else {
				if strings.Contains(flat, "BMI-DISK-BOOTED") || strings.Contains(flat, "Registered SAN device") {
					t.Error("booted with a wrong CHAP secret")
				}
				if !strings.Contains(flat, "BMI-BOOT-FAILED node node1") {
					t.Error("console lacks the failure message")
				}
			}
			if t.Failed() {
				t.Logf("console (unwrapped):\n%s", flat)
			}
			for _, ev := range tl.Events(nodeMAC) {
				t.Logf("timeline +%6.3fs %-20s %s", ev.At.Sub(start).Seconds(), ev.Step, ev.Detail)
			}
		})
	}
}

// startTGT runs tgtd in the server namespace with one target: LUN 1 is
// a 32 MiB disk with bootSector, CHAP "node one" required, mutual CHAP
// "target1". It is stopped (by PID) when the test ends.
func startTGT(t *testing.T, p *netnstest.Pair) {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "disk.img")
	// Sparse, and big enough that iPXE's guessed geometry (255 heads, 63
	// sectors) has whole cylinders: smaller disks fail with EIO.
	if err := os.WriteFile(disk, bootSector(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 32<<20); err != nil {
		t.Fatal(err)
	}
	// tgtd's management socket is machine-wide: a port nobody else has
	// used (no socket file), and our tgtd must still be running once
	// tgtadm works (another tgtd's lock would have made it exit).
	var ctlPort string
	for range 100 {
		var b [2]byte
		_, _ = rand.Read(b[:])
		port := fmt.Sprint(1000 + int(binary.BigEndian.Uint16(b[:]))%30000)
		if _, err := os.Stat("/run/tgtd/socket." + port + ".lock"); os.IsNotExist(err) {
			ctlPort = port
			break
		}
	}
	if ctlPort == "" {
		t.Fatal("no free tgtd control port")
	}
	tgtd := p.Server.Command(context.Background(), "tgtd", "-f", "-C", ctlPort, "--iscsi", "portal=10.199.1.1:3260")
	if err := tgtd.Start(); err != nil {
		t.Fatalf("start tgtd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = tgtd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = tgtd.Process.Kill() // tgtd ignores SIGTERM while it has targets
		<-exited
		os.Remove("/run/tgtd/socket." + ctlPort)
		os.Remove("/run/tgtd/socket." + ctlPort + ".lock")
	})
	adm := func(args ...string) error {
		out, err := exec.Command("tgtadm", append([]string{"-C", ctlPort, "--lld", "iscsi"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("tgtadm %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	var err error
	for range 50 {
		if err = adm("--op", "new", "--mode", "target", "--tid", "1", "-T", "iqn.2026-11.org.bmi:test.1"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		t.Fatalf("tgtd on control port %s exited: another tgtd holds the port", ctlPort)
	default:
	}
	for _, args := range [][]string{
		{"--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", disk},
		{"--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL"},
		{"--op", "new", "--mode", "account", "--user", "node one", "--password", "p$a{s}s w0rd"},
		{"--op", "bind", "--mode", "account", "--tid", "1", "--user", "node one"},
		{"--op", "new", "--mode", "account", "--user", "target1", "--password", "back-secret-1"},
		{"--op", "bind", "--mode", "account", "--tid", "1", "--user", "target1", "--outgoing"},
	} {
		if err := adm(args...); err != nil {
			t.Fatal(err)
		}
	}
}
