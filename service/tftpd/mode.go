package tftpd

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"

	"github.com/bmi-go/bmi/service/boot"
)

// modeConn sits between the server socket and pin/tftp, which accepts any
// transfer mode string: a request (RRQ or WRQ) whose mode is not octet or
// netascii (RFC 1350, any case) gets a TFTP error and never reaches the
// server; an accepted mode is lower-cased in place, so "NETASCII" is
// converted like "netascii".
type modeConn struct {
	net.PacketConn
	log   *slog.Logger
	limit *boot.LogLimiter
}

// TFTP opcodes and the error this filter answers with.
const (
	opRRQ          = 1
	opWRQ          = 2
	opError        = 5
	errIllegalOp   = 4
	badModeMessage = "unsupported transfer mode: use octet or netascii"
)

// ReadFrom returns the next packet that is not a request with a bad mode.
func (c *modeConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || n < 2 {
			return n, addr, err
		}
		op := binary.BigEndian.Uint16(p)
		if op != opRRQ && op != opWRQ {
			return n, addr, nil
		}
		mode, ok := requestMode(p[:n])
		if ok {
			lower := bytes.ToLower(mode)
			if string(lower) == "octet" || string(lower) == "netascii" {
				copy(mode, lower)
				return n, addr, nil
			}
		}
		if allowed, suppressed := c.limit.Allow(); allowed {
			c.log.Warn("tftp request refused: transfer mode not octet or netascii", "client", addr.String(),
				"mode", string(mode[:min(len(mode), 32)]), "suppressed_before", suppressed)
		}
		_, _ = c.PacketConn.WriteTo(errorPacket(errIllegalOp, badModeMessage), addr)
	}
}

// requestMode returns the mode field of a request packet (a slice of p),
// and false when the packet has no NUL-terminated file name and mode.
func requestMode(p []byte) ([]byte, bool) {
	rest := p[2:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return nil, false
	}
	rest = rest[i+1:]
	j := bytes.IndexByte(rest, 0)
	if j < 0 {
		return rest, false
	}
	return rest[:j], true
}

// errorPacket builds a TFTP ERROR packet.
func errorPacket(code uint16, msg string) []byte {
	b := make([]byte, 4, 5+len(msg))
	binary.BigEndian.PutUint16(b, opError)
	binary.BigEndian.PutUint16(b[2:], code)
	b = append(b, msg...)
	return append(b, 0)
}
