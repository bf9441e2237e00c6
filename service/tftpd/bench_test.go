package tftpd

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/pin/tftp/v3"

	"github.com/bmi-go/bmi/service/logging"
)

// BenchmarkTransfer fetches a 74 KB file (the size of undionly.kpxe) over
// loopback from our server and, as the baseline in the same run, from a
// bare pin/tftp server without BMI's checks.
func BenchmarkTransfer(b *testing.B) {
	dir := b.TempDir()
	data := bytes.Repeat([]byte{0x5a}, 74213)
	if err := os.WriteFile(filepath.Join(dir, "undionly.kpxe"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, addr string) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			got, err := get(addr, "undionly.kpxe")
			if err != nil || len(got) != len(data) {
				b.Fatalf("get: %v, %d bytes", err, len(got))
			}
		}
	}
	b.Run("bmi", func(b *testing.B) {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- (&Server{Root: dir, Log: logging.Discard()}).ServeConn(ctx, conn) }()
		defer func() { cancel(); <-done }()
		run(b, conn.LocalAddr().String())
	})
	b.Run("baseline-pin-tftp", func(b *testing.B) {
		srv := tftp.NewServer(func(name string, rf io.ReaderFrom) error {
			f, err := os.Open(filepath.Join(dir, name))
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = rf.ReadFrom(f)
			return err
		}, nil)
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(conn) }()
		defer func() { srv.Shutdown(); <-done }()
		run(b, conn.LocalAddr().String())
	})
}
