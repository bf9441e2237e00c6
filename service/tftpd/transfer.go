package tftpd

import (
	"context"
	"io"
	"log/slog"
	"net"

	"github.com/pin/tftp/v3"

	"github.com/bmi-go/bmi/service/boot"
)

// read is pin/tftp's read handler: one call per RRQ.
func (s *Server) read(name string, rf io.ReaderFrom) error {
	log := s.log().With("file", name)
	var remote net.UDPAddr
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		remote = ot.RemoteAddr()
		log = log.With("client", remote.String())
	}
	r, size, done, err := s.open(name)
	if err != nil {
		if ok, suppressed := s.logLimit.Allow(); ok {
			log.Warn("tftp read refused", "err", err, "suppressed_before", suppressed)
		}
		s.observe("refused", 0)
		return err
	}
	defer done()
	ctx := context.Background()
	s.Faults.Wait(ctx)
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(size) // answers the tsize option
	}
	n, err := rf.ReadFrom(r)
	if err != nil {
		log.Warn("tftp transfer failed", "sent", n, "size", size, "err", err)
		s.observe("failed", n)
		return err
	}
	s.observe("ok", n)
	log.Info("tftp transfer done", "bytes", n)
	if s.Recorder != nil && s.Clients != nil && remote.IP != nil {
		if mac, err := s.Clients.MACByIP(ctx, remote.IP); err == nil {
			s.Recorder.Record(ctx, boot.Event{MAC: mac, Step: boot.StepBinary, Detail: name})
		}
	}
	return nil
}

// write refuses every write request.
func (s *Server) write(name string, _ io.WriterTo) error {
	if ok, suppressed := s.logLimit.Allow(); ok {
		s.log().Warn("tftp write request refused: the server is read-only", "file", name, "suppressed_before", suppressed)
	}
	return errReadOnly
}

type readOnlyError struct{}

// Error implements error; the text goes to the client in the TFTP error.
func (readOnlyError) Error() string { return "write requests are not allowed: read-only server" }

var errReadOnly error = readOnlyError{}

// lossyConn drops incoming requests at the configured rate (transfers
// run on sockets of their own).
type lossyConn struct {
	net.PacketConn
	faults boot.Faults
	log    *slog.Logger
}

// ReadFrom implements net.PacketConn, dropping packets now and then.
func (c *lossyConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || !c.faults.Drop() {
			return n, addr, err
		}
		c.log.Debug("fault injection: dropped a tftp packet", "from", addr)
	}
}
