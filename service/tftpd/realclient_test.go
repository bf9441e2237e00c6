package tftpd

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bmi-go/bmi/internal/netnstest"
	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/logging"
)

// TestRealClients fetches Debian's undionly.kpxe with the real tftp-hpa
// and atftp clients across a veth pair between two namespaces the test
// makes, and checks that they cannot leave the root or write.
func TestRealClients(t *testing.T) {
	const root = "/usr/lib/ipxe"
	if _, err := os.Stat(filepath.Join(root, "undionly.kpxe")); err != nil {
		testenv.Missing(t, root+"/undionly.kpxe", "install the Debian package ipxe (make deps)")
	}
	testenv.RequireCommand(t, "tftp", "tftp-hpa")
	testenv.RequireCommand(t, "atftp", "atftp")
	p := netnstest.New(t)
	clientIP := p.AddClientIP(t)
	want, err := os.ReadFile(filepath.Join(root, "undionly.kpxe"))
	if err != nil {
		t.Fatal(err)
	}

	tl := boot.NewTimeline()
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 2}
	obs := &countingObserver{results: map[string]int{}}
	s := &Server{Root: root, Log: logging.Discard(), Recorder: tl, Observer: obs,
		Clients: staticClients{clientIP.String(): mac}, Preload: []string{"ipxe.efi"}}
	ctx, cancel := context.WithCancel(context.Background())
	var conn *net.UDPConn
	if err := p.Server.Do(func() (err error) {
		conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: p.ServerIP, Port: 69})
		return err
	}); err != nil {
		t.Fatalf("listen on port 69 in %s: %v", p.Server.Name, err)
	}
	// ServeConn opens a socket per transfer: run it inside the namespace.
	done := p.Server.Go(func() error { return s.ServeConn(ctx, conn) })
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeConn = %v", err)
		}
	}()

	dir := t.TempDir()
	server := p.ServerIP.String()
	fetch := map[string]func(remote, local string) []string{
		"tftp-hpa": func(remote, local string) []string {
			return []string{"tftp", "-m", "binary", server, "-c", "get", remote, local}
		},
		"atftp": func(remote, local string) []string {
			return []string{"atftp", "--option", "timeout 1", "-g", "-r", remote, "-l", local, server}
		},
	}
	for client, argv := range fetch {
		t.Run(client, func(t *testing.T) {
			cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
			defer ccancel()
			local := filepath.Join(dir, client+".kpxe")
			a := argv("undionly.kpxe", local)
			out, err := p.Client.Command(cctx, a[0], a[1:]...).CombinedOutput()
			got, rerr := os.ReadFile(local)
			if err != nil || rerr != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s get undionly.kpxe: %v / %v: %d of %d bytes, identical=%v; output: %s",
					client, err, rerr, len(got), len(want), bytes.Equal(got, want), out)
			}
			for _, bad := range []string{"../../../etc/passwd", "/etc/passwd", "qemu/../../../etc/passwd", "nope.bin"} {
				local := filepath.Join(dir, client+"-refused")
				os.Remove(local)
				a := argv(bad, local)
				out, _ := p.Client.Command(cctx, a[0], a[1:]...).CombinedOutput()
				if got, _ := os.ReadFile(local); len(got) > 0 {
					t.Errorf("%s get %q received %d bytes, want it refused (output %s)", client, bad, len(got), out)
				}
			}
		})
	}
	// The observer (bmid's metrics) heard each client's transfer and its
	// refusals.
	if ok, refused, sent := obs.get(); ok < len(fetch) || refused < 4*len(fetch) || sent < int64(len(fetch)*len(want)) {
		t.Errorf("observer: %d ok, %d refused, %d bytes; want >= %d, >= %d, >= %d", ok, refused, sent, len(fetch), 4*len(fetch), len(fetch)*len(want))
	}
	t.Run("write refused", func(t *testing.T) {
		src := filepath.Join(dir, "upload.txt")
		if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := p.Client.Command(ctx, "tftp", "-m", "binary", server, "-c", "put", src, "bmi-upload.txt").CombinedOutput()
		if _, err := os.Stat(filepath.Join(root, "bmi-upload.txt")); err == nil {
			t.Fatalf("a tftp put wrote into %s (output %s)", root, out)
		}
		if !bytes.Contains(out, []byte("read-only")) {
			t.Errorf("tftp put output %q does not carry the server's refusal", out)
		}
	})
	t.Run("preloaded ipxe.efi through its symlink", func(t *testing.T) {
		want, err := os.ReadFile(filepath.Join(root, "ipxe.efi"))
		if err != nil {
			testenv.Missing(t, root+"/ipxe.efi", "install the Debian package ipxe")
		}
		local := filepath.Join(dir, "ipxe.efi")
		out, err := p.Client.Command(ctx, "tftp", "-m", "binary", server, "-c", "get", "ipxe.efi", local).CombinedOutput()
		got, _ := os.ReadFile(local)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("tftp get ipxe.efi: %v, %d of %d bytes; output %s", err, len(got), len(want), out)
		}
	})
	var evs []boot.Event
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if evs = tl.Events(mac); len(evs) >= 3 {
			break
		}
	}
	if len(evs) != 3 {
		t.Errorf("timeline of the client has %d %s events, want 3", len(evs), boot.StepBinary)
	}
	for _, ev := range evs {
		t.Logf("timeline %s %s %s %s", ev.MAC, ev.At.Format(time.RFC3339Nano), ev.Step, ev.Detail)
	}
}

// countingObserver counts what a tftpd.Observer hears.
type countingObserver struct {
	mu      sync.Mutex
	results map[string]int
	bytes   int64
}

func (o *countingObserver) Transfer(result string, n int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.results[result]++
	o.bytes += n
}

func (o *countingObserver) get() (ok, refused int, sent int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.results["ok"], o.results["refused"], o.bytes
}
