package tftpd

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/logging"
)

// tree makes a root with a file, a subdirectory, a symlink inside the root
// and one leading out of it; it returns the root and the secret outside.
func tree(t *testing.T) (root, secret string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "root")
	secret = filepath.Join(base, "secret.txt")
	must(t, os.MkdirAll(filepath.Join(root, "efi"), 0o755))
	must(t, os.WriteFile(secret, []byte("TOP SECRET"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "undionly.kpxe"), bytes.Repeat([]byte("kpxe"), 5000), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "efi", "ipxe.efi"), []byte("EFI"), 0o644))
	must(t, os.Symlink("undionly.kpxe", filepath.Join(root, "inside-link")))
	must(t, os.Symlink(secret, filepath.Join(root, "escape")))
	must(t, os.Symlink("../secret.txt", filepath.Join(root, "escape-rel")))
	return root, secret
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type staticClients map[string]net.HardwareAddr

func (c staticClients) MACByIP(_ context.Context, ip net.IP) (net.HardwareAddr, error) {
	return c[ip.String()], nil
}

// start serves s on a loopback port until the test ends.
func start(t *testing.T, s *Server) string {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeConn(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeConn after cancel = %v, want nil", err)
		}
	})
	return conn.LocalAddr().String()
}

func get(addr, name string) ([]byte, error) {
	c, err := tftp.NewClient(addr)
	if err != nil {
		return nil, err
	}
	c.SetTimeout(time.Second)
	c.SetRetries(3)
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_, err = wt.WriteTo(&b)
	return b.Bytes(), err
}

func TestServeLoopback(t *testing.T) {
	root, _ := tree(t)
	tl := boot.NewTimeline()
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 1}
	s := &Server{Root: root, Log: logging.Discard(), Recorder: tl, Clients: staticClients{"127.0.0.1": mac}}
	must(t, s.AddFile("bmi/boot.ipxe", []byte("#!ipxe\n")))
	addr := start(t, s)
	kpxe, _ := os.ReadFile(filepath.Join(root, "undionly.kpxe"))

	tests := map[string]struct {
		name string
		want []byte // nil: must be refused
	}{
		"file":             {"undionly.kpxe", kpxe},
		"subdir":           {"efi/ipxe.efi", []byte("EFI")},
		"symlink inside":   {"inside-link", kpxe},
		"generated":        {"bmi/boot.ipxe", []byte("#!ipxe\n")},
		"missing":          {"nope", nil},
		"dotdot":           {"../secret.txt", nil},
		"inner dotdot":     {"efi/../../secret.txt", nil},
		"absolute":         {"/etc/passwd", nil},
		"symlink out":      {"escape", nil},
		"symlink out rel":  {"escape-rel", nil},
		"directory":        {"efi", nil},
		"very long":        {strings.Repeat("a/", 200) + "x", nil},
		"backslash dotdot": {`..\secret.txt`, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := get(addr, tc.name)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("get %q succeeded with %d bytes, want it refused", tc.name, len(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("get %q: %v", tc.name, err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("get %q: %d bytes differ from the %d expected", tc.name, len(got), len(tc.want))
			}
		})
	}
	// The server records a transfer once the last ACK is in, which may be
	// just after the client has returned.
	var evs []boot.Event
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if evs = tl.Events(mac); len(evs) >= 4 {
			break
		}
	}
	if len(evs) != 4 {
		t.Fatalf("timeline has %d events, want one per successful transfer (4)", len(evs))
	}
	for _, ev := range evs {
		if ev.Step != boot.StepBinary {
			t.Errorf("event %+v, want step %s", ev, boot.StepBinary)
		}
	}
}

func TestWriteRefused(t *testing.T) {
	root, _ := tree(t)
	addr := start(t, &Server{Root: root, Log: logging.Discard()})
	c, err := tftp.NewClient(addr)
	must(t, err)
	c.SetTimeout(time.Second)
	rf, err := c.Send("new.txt", "octet")
	if err == nil {
		_, err = rf.ReadFrom(strings.NewReader("data"))
	}
	if err == nil {
		t.Fatal("write request succeeded on a read-only server")
	}
	if _, err := os.Stat(filepath.Join(root, "new.txt")); !os.IsNotExist(err) {
		t.Fatalf("a file was written: %v", err)
	}
}

func TestPreloadFollowsSymlink(t *testing.T) {
	root, secret := tree(t)
	// Preload is the operator's choice, so it may follow a link out of
	// root (Debian's ipxe.efi -> /boot/ipxe.efi); requests never do.
	addr := start(t, &Server{Root: root, Log: logging.Discard(), Preload: []string{"escape", "not-there"}})
	got, err := get(addr, "escape")
	want, _ := os.ReadFile(secret)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("preloaded file: %d bytes, %v", len(got), err)
	}
	if _, err := get(addr, "escape-rel"); err == nil {
		t.Fatal("a symlink out of root that was not preloaded was served")
	}
}

func TestFaultDrop(t *testing.T) {
	root, _ := tree(t)
	addr := start(t, &Server{Root: root, Log: logging.Discard(), Faults: boot.Faults{DropRate: 1}})
	if _, err := get(addr, "undionly.kpxe"); err == nil {
		t.Fatal("transfer succeeded with every packet dropped")
	}
}

func TestConcurrentTransfers(t *testing.T) {
	root, _ := tree(t)
	addr := start(t, &Server{Root: root, Log: logging.Discard()})
	want, _ := os.ReadFile(filepath.Join(root, "undionly.kpxe"))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := get(addr, "undionly.kpxe")
			if err == nil && !bytes.Equal(got, want) {
				err = os.ErrInvalid
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent transfer: %v", err)
		}
	}
}

func TestTransferModes(t *testing.T) {
	root, _ := tree(t)
	s := &Server{Root: root, Log: logging.Discard()}
	addr := start(t, s)
	tests := map[string]struct {
		mode string
		ok   bool
	}{
		"octet":          {"octet", true},
		"netascii":       {"netascii", true},
		"upper case":     {"OCTET", true},
		"mail":           {"mail", false},
		"garbage":        {"x\x01y", false},
		"empty":          {"", false},
		"octet prefixed": {"octetx", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := tftp.NewClient(addr)
			must(t, err)
			c.SetTimeout(300 * time.Millisecond)
			c.SetRetries(1)
			wt, err := c.Receive("undionly.kpxe", tc.mode)
			if err == nil {
				_, err = wt.WriteTo(io.Discard)
			}
			if tc.ok != (err == nil) {
				t.Fatalf("RRQ undionly.kpxe mode %q: err %v, want ok=%v", tc.mode, err, tc.ok)
			}
			if !tc.ok && !strings.Contains(err.Error(), "transfer mode") {
				t.Errorf("RRQ mode %q refused with %v, want the TFTP error naming the transfer mode", tc.mode, err)
			}
		})
	}
}

func FuzzRequestMode(f *testing.F) {
	f.Add([]byte("\x00\x01file\x00octet\x00"))
	f.Add([]byte("\x00\x01file\x00"))
	f.Add([]byte("\x00\x02\x00\x00"))
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) < 2 {
			return
		}
		mode, ok := requestMode(p)
		if ok && bytes.IndexByte(mode, 0) >= 0 {
			t.Fatalf("requestMode(%q) = %q containing NUL", p, mode)
		}
	})
}
