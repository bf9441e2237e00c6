// Package tftpd is BMI's read-only TFTP server for iPXE binaries
// (github.com/pin/tftp/v3). It serves files from one root directory
// (Debian's /usr/lib/ipxe) and files generated in memory, and nothing else:
// names with "..", absolute paths, control or NUL bytes, over-long names,
// and symlinks that lead out of the root are refused with a log line, and
// so is every write request.
package tftpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/bmi-go/bmi/service/boot"
	"github.com/bmi-go/bmi/service/fault"
)

// MaxNameLen is the longest file name the server accepts.
const MaxNameLen = 255

// Recorder takes the steps of a node's boot timeline.
type Recorder interface {
	Record(ctx context.Context, ev boot.Event)
}

// Clients maps a client's IPv4 address to its MAC (through the DHCP
// leases), so transfers can be put on the node's boot timeline.
type Clients interface {
	MACByIP(ctx context.Context, ip net.IP) (net.HardwareAddr, error)
}

// Server is a read-only TFTP server. Set the fields, then call Serve.
type Server struct {
	// Addr is the UDP host:port to listen on (":69" in production).
	Addr string
	// Root is the directory files are served from; empty serves only
	// in-memory files.
	Root string
	// Preload names files under Root that are read into memory when Serve
	// starts, following symlinks wherever they lead: that is how Debian's
	// ipxe.efi (a symlink to /boot/ipxe.efi) is served. Requests themselves
	// never follow a symlink out of Root. A preload file that is missing
	// is logged and skipped.
	Preload []string
	// Log receives one line per transfer and per refused request.
	Log *slog.Logger
	// Recorder, when set, records StepBinary for every completed transfer.
	Recorder Recorder
	// Clients, when set, names the MAC of a transfer's client for Recorder.
	Clients Clients
	// Observer, when set, hears the outcome of every read request (metrics).
	Observer Observer
	// Faults drops incoming requests and delays transfers (tests, lab).
	Faults boot.Faults
	// Timeout is the retransmission timeout (default 2 s); Retries the
	// number of retransmissions (default 5).
	Timeout time.Duration
	Retries int

	mu       sync.RWMutex
	files    map[string][]byte
	root     *os.Root
	logLimit boot.LogLimiter
}

// AddFile publishes a generated file under name, replacing any earlier one.
func (s *Server) AddFile(name string, data []byte) error {
	clean, err := CleanName(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		s.files = map[string][]byte{}
	}
	s.files[clean] = bytes.Clone(data)
	return nil
}

// RemoveFile withdraws a generated file.
func (s *Server) RemoveFile(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, name)
}

// CleanName checks a requested file name and returns it in the form used
// for lookups. Backslashes count as slashes (some PXE ROMs send them). It
// refuses, with an error of kind fault.Invalid: empty and over-long names,
// NUL and control bytes, absolute paths, and "." or ".." or empty path
// elements.
func CleanName(name string) (string, error) {
	if name == "" || len(name) > MaxNameLen {
		return "", fault.Errorf(fault.Invalid, "tftp file name of %d bytes: must be 1 to %d", len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return "", fault.Errorf(fault.Invalid, "tftp file name %q has a control byte", name)
		}
	}
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") {
		return "", fault.Errorf(fault.Invalid, "tftp file name %q is an absolute path", name)
	}
	for _, el := range strings.Split(n, "/") {
		if el == "" || el == "." || el == ".." {
			return "", fault.Errorf(fault.Invalid, "tftp file name %q has an empty, \".\" or \"..\" element", name)
		}
	}
	if !fs.ValidPath(n) {
		return "", fault.Errorf(fault.Invalid, "tftp file name %q is not a valid path", name)
	}
	return n, nil
}

// open returns the content of a requested name: an in-memory file first,
// else a regular file under Root that does not leave it.
func (s *Server) open(name string) (io.ReadSeeker, int64, func(), error) {
	clean, err := CleanName(name)
	if err != nil {
		return nil, 0, nil, err
	}
	s.mu.RLock()
	data, ok := s.files[clean]
	root := s.root
	s.mu.RUnlock()
	if ok {
		return bytes.NewReader(data), int64(len(data)), func() {}, nil
	}
	if root == nil {
		return nil, 0, nil, fault.Errorf(fault.NotFound, "tftp file %q", clean)
	}
	f, err := root.Open(clean)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil, fault.Errorf(fault.NotFound, "tftp file %q: %v", clean, err)
	}
	if err != nil {
		// os.Root refuses paths and symlinks that escape it.
		return nil, 0, nil, fault.Errorf(fault.Forbidden, "tftp file %q: %v", clean, err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, nil, fault.Errorf(fault.Forbidden, "tftp file %q is not a regular file", clean)
	}
	return f, st.Size(), func() { f.Close() }, nil
}

// Serve listens on Addr and serves until ctx is done; then it stops taking
// requests, lets transfers in flight end, and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	addr, err := net.ResolveUDPAddr("udp", s.Addr)
	if err != nil {
		return fault.Errorf(fault.Invalid, "tftp listen address %q: %v", s.Addr, err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return fmt.Errorf("tftp server: listen on %s: %w", s.Addr, err)
	}
	return s.ServeConn(ctx, conn)
}

// ServeConn is Serve on a socket the caller opened (and that ServeConn
// closes).
func (s *Server) ServeConn(ctx context.Context, conn net.PacketConn) error {
	log := s.log()
	if err := s.Faults.Validate(); err != nil {
		conn.Close()
		return fault.Errorf(fault.Invalid, "tftp faults: %v", err)
	}
	if err := s.openRoot(); err != nil {
		conn.Close()
		return err
	}
	defer s.closeRoot()
	s.Faults.Announce(log, "tftp")
	srv := tftp.NewServer(s.read, s.write)
	// Not pin/tftp's single-port mode: it can close a transfer's channel
	// while its read loop sends a late duplicate packet into it (a data
	// race, and a "send on closed channel" panic). Each transfer gets its
	// own socket, opened by the goroutine that called ServeConn.
	timeout, retries := s.Timeout, s.Retries
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	if retries <= 0 {
		retries = 5
	}
	srv.SetTimeout(timeout)
	srv.SetRetries(retries)
	var pc net.PacketConn = &modeConn{PacketConn: conn, log: log, limit: &s.logLimit}
	if s.Faults.DropRate > 0 {
		pc = &lossyConn{PacketConn: pc, faults: s.Faults, log: log}
	}
	// Serve runs on this goroutine, so the per-transfer sockets it opens
	// are created in the same network namespace as conn (tests run
	// ServeConn on a thread inside a namespace of their own).
	quit, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			srv.Shutdown() // closes conn, waits for transfers in flight
		case <-quit:
		}
	}()
	log.Info("tftp server listening", "addr", conn.LocalAddr().String(), "root", s.Root)
	err := srv.Serve(pc)
	close(quit)
	<-stopped
	conn.Close()
	if ctx.Err() == nil {
		return fmt.Errorf("tftp server on %s stopped: %w", conn.LocalAddr(), err)
	}
	log.Info("tftp server stopped", "addr", conn.LocalAddr().String())
	return nil
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) openRoot() error {
	if s.Root == "" {
		return nil
	}
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		return fmt.Errorf("tftp root %s: %w", s.Root, err)
	}
	for _, name := range s.Preload {
		clean, err := CleanName(name)
		if err != nil {
			root.Close()
			return err
		}
		data, err := os.ReadFile(filepath.Join(s.Root, filepath.FromSlash(clean)))
		if err != nil {
			s.log().Warn("tftp preload file not available; skipped", "file", clean, "err", err)
			continue
		}
		if err := s.AddFile(clean, data); err != nil {
			root.Close()
			return err
		}
	}
	s.mu.Lock()
	s.root = root
	s.mu.Unlock()
	return nil
}

func (s *Server) closeRoot() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root != nil {
		s.root.Close()
		s.root = nil
	}
}

// Observer hears the outcome of read requests, for metrics; its method must
// be safe for concurrent use.
type Observer interface {
	// Transfer reports one read request: result is "ok", "refused" (no such
	// file, bad name) or "failed" (the transfer broke off); bytes were sent.
	Transfer(result string, bytes int64)
}

func (s *Server) observe(result string, n int64) {
	if s.Observer != nil {
		s.Observer.Transfer(result, n)
	}
}
