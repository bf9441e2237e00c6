package iscsi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
)

// Opcodes of RFC 7143 §11.
const (
	opNOPOut     = 0x00
	opSCSICmd    = 0x01
	opTMFReq     = 0x02
	opLoginReq   = 0x03
	opTextReq    = 0x04
	opDataOut    = 0x05
	opLogoutReq  = 0x06
	opSNACK      = 0x10
	opNOPIn      = 0x20
	opSCSIResp   = 0x21
	opTMFResp    = 0x22
	opLoginResp  = 0x23
	opTextResp   = 0x24
	opDataIn     = 0x25
	opLogoutResp = 0x26
	opR2T        = 0x31
	opAsync      = 0x32
	opReject     = 0x3f
)

// bhsLen is the size of the Basic Header Segment.
const bhsLen = 48

// reservedTag is the all-ones task tag ("no tag").
const reservedTag = 0xffffffff

// maxAHSLen bounds the additional header segments we accept (the field
// allows 1020 bytes; nothing we support needs more than an extended CDB).
const maxAHSLen = 1020

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errDigest reports a header or data digest mismatch.
var errDigest = errors.New("iscsi: digest mismatch")

// pdu is one iSCSI PDU: the 48-byte BHS, the additional header segments and
// the data segment (without padding or digests). Field accessors read and
// write the BHS in place.
type pdu struct {
	bhs  [bhsLen]byte
	ahs  []byte
	data []byte
}

func (p *pdu) opcode() byte            { return p.bhs[0] & 0x3f }
func (p *pdu) immediate() bool         { return p.bhs[0]&0x40 != 0 }
func (p *pdu) final() bool             { return p.bhs[1]&0x80 != 0 }
func (p *pdu) flags() byte             { return p.bhs[1] }
func (p *pdu) lun() [8]byte            { var l [8]byte; copy(l[:], p.bhs[8:16]); return l }
func (p *pdu) itt() uint32             { return p.u32(16) }
func (p *pdu) u32(off int) uint32      { return binary.BigEndian.Uint32(p.bhs[off:]) }
func (p *pdu) u16(off int) uint16      { return binary.BigEndian.Uint16(p.bhs[off:]) }
func (p *pdu) put32(off int, v uint32) { binary.BigEndian.PutUint32(p.bhs[off:], v) }
func (p *pdu) put16(off int, v uint16) { binary.BigEndian.PutUint16(p.bhs[off:], v) }

// dataSegLen is the DataSegmentLength field of the BHS.
func (p *pdu) dataSegLen() int {
	return int(p.bhs[5])<<16 | int(p.bhs[6])<<8 | int(p.bhs[7])
}

// newPDU starts a target PDU with opcode op and the F bit set.
func newPDU(op byte) *pdu {
	p := &pdu{}
	p.bhs[0] = op
	p.bhs[1] = 0x80
	return p
}

// pad4 is the number of padding bytes after n bytes of data.
func pad4(n int) int { return (4 - n%4) % 4 }

// digests says which digests a connection uses.
type digests struct {
	header, data bool
}

// readPDU reads one PDU from r. maxData bounds the data segment (the
// MaxRecvDataSegmentLength we declared); a longer one is an error and the
// connection must be dropped, since it cannot be resynchronised.
func readPDU(r io.Reader, d digests, maxData int) (*pdu, error) {
	p := &pdu{}
	if _, err := io.ReadFull(r, p.bhs[:]); err != nil {
		return nil, err
	}
	ahsLen := int(p.bhs[4]) * 4
	hdrCRC := crc32.New(castagnoli)
	hdrCRC.Write(p.bhs[:])
	if ahsLen > 0 {
		p.ahs = make([]byte, ahsLen)
		if _, err := io.ReadFull(r, p.ahs); err != nil {
			return nil, err
		}
		hdrCRC.Write(p.ahs)
	}
	var sum [4]byte
	if d.header {
		if _, err := io.ReadFull(r, sum[:]); err != nil {
			return nil, err
		}
		if binary.LittleEndian.Uint32(sum[:]) != hdrCRC.Sum32() {
			return nil, fmt.Errorf("header: %w", errDigest)
		}
	}
	n := p.dataSegLen()
	if n > maxData {
		return nil, fmt.Errorf("iscsi: data segment of %d bytes exceeds the negotiated %d", n, maxData)
	}
	if n > 0 {
		buf := make([]byte, n+pad4(n))
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		p.data = buf[:n]
		if d.data {
			if _, err := io.ReadFull(r, sum[:]); err != nil {
				return nil, err
			}
			if binary.LittleEndian.Uint32(sum[:]) != crc32.Checksum(buf, castagnoli) {
				return p, fmt.Errorf("data: %w", errDigest)
			}
		}
	}
	return p, nil
}

// marshal encodes p with padding and the digests in d, setting the AHS and
// data segment length fields from p.ahs and p.data.
func (p *pdu) marshal(d digests) ([]byte, error) {
	if len(p.ahs)%4 != 0 || len(p.ahs) > maxAHSLen {
		return nil, fmt.Errorf("iscsi: bad AHS length %d", len(p.ahs))
	}
	if len(p.data) > 1<<24-1 {
		return nil, fmt.Errorf("iscsi: data segment of %d bytes is too long", len(p.data))
	}
	p.bhs[4] = byte(len(p.ahs) / 4)
	n := len(p.data)
	p.bhs[5], p.bhs[6], p.bhs[7] = byte(n>>16), byte(n>>8), byte(n)
	size := bhsLen + len(p.ahs) + n + pad4(n)
	if d.header {
		size += 4
	}
	if d.data && n > 0 {
		size += 4
	}
	out := make([]byte, 0, size)
	out = append(out, p.bhs[:]...)
	out = append(out, p.ahs...)
	if d.header {
		out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
	}
	if n > 0 {
		start := len(out)
		out = append(out, p.data...)
		out = append(out, make([]byte, pad4(n))...)
		if d.data {
			out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out[start:], castagnoli))
		}
	}
	return out, nil
}

// crc32Castagnoli is CRC32C of b.
func crc32Castagnoli(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// appendTo encodes p like marshal, but appends it to bufs as separate
// slices: the header (and its digest), the data segment from p.data
// itself, not copied, and the padding with the data digest.
func (p *pdu) appendTo(bufs net.Buffers, d digests) (net.Buffers, error) {
	n := len(p.data)
	data := p.data
	p.data = nil
	hdr, err := p.marshal(d)
	p.data = data
	if err != nil {
		return bufs, err
	}
	p.bhs[5], p.bhs[6], p.bhs[7] = byte(n>>16), byte(n>>8), byte(n)
	if n == 0 {
		return append(bufs, hdr), nil
	}
	// The header (and its digest) must cover the real data length.
	hdr[5], hdr[6], hdr[7] = p.bhs[5], p.bhs[6], p.bhs[7]
	if d.header {
		end := bhsLen + len(p.ahs)
		binary.LittleEndian.PutUint32(hdr[end:], crc32.Checksum(hdr[:end], castagnoli))
	}
	bufs = append(bufs, hdr, data)
	var tail []byte
	if pad := pad4(n); pad > 0 || d.data {
		tail = make([]byte, pad, pad+4)
		if d.data {
			c := crc32.Update(crc32.Checksum(data, castagnoli), castagnoli, tail)
			tail = binary.LittleEndian.AppendUint32(tail, c)
		}
		bufs = append(bufs, tail)
	}
	return bufs, nil
}
