package iscsi

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
)

// client is a small iSCSI initiator for the tests: enough of RFC 7143 to
// log in (with CHAP), discover, and run several SCSI commands at once.
type client struct {
	t         testing.TB
	c         net.Conn
	br        *bufio.Reader
	dig       digests
	cmdSN     uint32
	expStatSN uint32
	maxCmdSN  uint32
	itt       uint32
	p         params // negotiated
	tgtRecv   int    // the target's MaxRecvDataSegmentLength
	tasks     map[uint32]*ctask
	pings     int // NOP-In pings answered
	noAnswer  bool
	lun       byte    // LUN of the commands (tgtd exports its disks from LUN 1)
	isid      [6]byte // the session's ISID; zero: 80 00 00 12 34 56
}

// ctask is one command of the client.
type ctask struct {
	itt      uint32
	out, in  []byte
	status   byte
	sense    []byte
	flags    byte
	residual uint32
	done     bool
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c), cmdSN: 1, tasks: map[uint32]*ctask{}, tgtRecv: 8192, p: defaultParams()}
}

func (c *client) send(p *pdu) {
	c.t.Helper()
	b, err := p.marshal(c.dig)
	if err != nil {
		c.t.Fatal(err)
	}
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// recv reads one PDU; it fails the test on error unless allowEOF.
func (c *client) recv() (*pdu, error) {
	c.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	p, err := readPDU(c.br, c.dig, 1<<24)
	if err != nil {
		return nil, err
	}
	switch p.opcode() {
	case opSCSIResp, opTMFResp, opTextResp, opLogoutResp, opReject, opLoginResp:
		c.expStatSN = p.u32(24) + 1
	case opNOPIn:
		if p.itt() != reservedTag {
			c.expStatSN = p.u32(24) + 1
		}
	case opDataIn:
		if p.flags()&1 != 0 {
			c.expStatSN = p.u32(24) + 1
		}
	}
	if p.opcode() != opLoginResp {
		c.maxCmdSN = p.u32(32)
	}
	return p, nil
}

func (c *client) mustRecv() *pdu {
	c.t.Helper()
	p, err := c.recv()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return p
}

func (c *client) nextITT() uint32 { c.itt++; return c.itt }

// loginOpts describes a login.
type loginOpts struct {
	initiator    string
	target       string // empty: discovery
	chap         *CHAP  // credentials to answer the target's challenge with
	mutual       *CHAP  // expected target credentials (mutual CHAP)
	authOffer    string // AuthMethod offer; default "None" or "CHAP,None"
	keys         []keyValue
	skipSecurity bool
}

// loginPDU builds a Login Request.
func (c *client) loginPDU(csg, nsg byte, transit bool, kvs []keyValue) *pdu {
	p := newPDU(opLoginReq)
	p.bhs[0] |= 0x40
	p.bhs[1] = csg<<2 | nsg
	if transit {
		p.bhs[1] |= 0x80
	}
	copy(p.bhs[8:14], []byte{0x80, 0, 0, 0x12, 0x34, 0x56})
	if c.isid != ([6]byte{}) {
		copy(p.bhs[8:14], c.isid[:])
	}
	p.put32(16, c.nextITT())
	p.put32(24, c.cmdSN)
	p.put32(28, c.expStatSN)
	p.data = marshalText(kvs)
	return p
}

// loginStep sends one login PDU and returns the response and its keys.
func (c *client) loginStep(p *pdu) (*pdu, map[string]string) {
	c.t.Helper()
	c.send(p)
	r := c.mustRecv()
	if r.opcode() != opLoginResp {
		c.t.Fatalf("got opcode 0x%x during login", r.opcode())
	}
	kvs, err := parseText(r.data)
	if err != nil {
		c.t.Fatalf("login response text: %v", err)
	}
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return r, m
}

// login logs in; it returns the final status (0 on success) and the
// operational answers.
func (c *client) login(o loginOpts) (uint16, map[string]string) {
	c.t.Helper()
	if o.initiator == "" {
		o.initiator = "iqn.2026-11.org.test:init"
	}
	first := []keyValue{{"InitiatorName", o.initiator}}
	if o.target == "" {
		first = append(first, keyValue{"SessionType", "Discovery"})
	} else {
		first = append(first, keyValue{"TargetName", o.target})
	}
	status := func(r *pdu) uint16 { return uint16(r.bhs[36])<<8 | uint16(r.bhs[37]) }
	ops := map[string]string{}
	if !o.skipSecurity {
		offer := o.authOffer
		if offer == "" {
			offer = "None"
			if o.chap != nil {
				offer = "CHAP,None"
			}
		}
		r, m := c.loginStep(c.loginPDU(0, 1, true, append(first, keyValue{"AuthMethod", offer})))
		if s := status(r); s != 0 {
			return s, nil
		}
		first = nil
		if m["AuthMethod"] == "CHAP" {
			if o.chap == nil {
				c.t.Fatal("target chose CHAP but the test has no credentials")
			}
			r, m = c.loginStep(c.loginPDU(0, 1, false, []keyValue{{"CHAP_A", "5"}}))
			if s := status(r); s != 0 {
				return s, nil
			}
			id, _ := strconv.Atoi(m["CHAP_I"])
			chal, err := decodeBinary(m["CHAP_C"])
			if err != nil {
				c.t.Fatalf("CHAP_C %q: %v", m["CHAP_C"], err)
			}
			kvs := []keyValue{{"CHAP_N", o.chap.User}, {"CHAP_R", encodeHex(chapResponse(byte(id), o.chap.Secret, chal))}}
			myChal := []byte("client-challenge-0123")
			if o.mutual != nil {
				kvs = append(kvs, keyValue{"CHAP_I", "77"}, keyValue{"CHAP_C", encodeHex(myChal)})
			}
			r, m = c.loginStep(c.loginPDU(0, 1, true, kvs))
			if s := status(r); s != 0 {
				return s, nil
			}
			if o.mutual != nil {
				got, _ := decodeBinary(m["CHAP_R"])
				if m["CHAP_N"] != o.mutual.User || !chapVerify(77, o.mutual.Secret, myChal, got) {
					c.t.Fatalf("target's mutual CHAP answer is wrong: %v", m)
				}
			}
		}
		if r.flags()&0x80 == 0 {
			c.t.Fatalf("target did not transit after security: flags 0x%x", r.flags())
		}
	}
	kvs := append(first, o.keys...)
	r, m := c.loginStep(c.loginPDU(1, 3, true, kvs))
	if s := status(r); s != 0 {
		return s, nil
	}
	for k, v := range m {
		ops[k] = v
	}
	if r.flags()&0x83 != 0x83 {
		c.t.Fatalf("login did not reach full feature: flags 0x%x", r.flags())
	}
	c.maxCmdSN = r.u32(32)
	c.apply(o.keys, ops)
	return 0, ops
}

// apply records the negotiated values the client has to follow.
func (c *client) apply(offered []keyValue, ans map[string]string) {
	for _, kv := range offered {
		if kv.Key == "MaxRecvDataSegmentLength" {
			c.p.initiatorMaxRecv, _ = strconv.Atoi(kv.Value)
		}
	}
	for k, v := range ans {
		switch k {
		case "HeaderDigest":
			c.dig.header = v == "CRC32C"
		case "DataDigest":
			c.dig.data = v == "CRC32C"
		case "MaxRecvDataSegmentLength":
			c.tgtRecv, _ = strconv.Atoi(v)
		case "MaxBurstLength":
			c.p.maxBurst, _ = strconv.Atoi(v)
		case "FirstBurstLength":
			c.p.firstBurst, _ = strconv.Atoi(v)
		case "InitialR2T":
			c.p.initialR2T = v == "Yes"
		case "ImmediateData":
			c.p.immediateData = v == "Yes"
		}
	}
}

// submit sends a SCSI command (with immediate and unsolicited data as
// negotiated) and returns its task.
func (c *client) submit(cdb []byte, edtl uint32, read bool, out []byte) *ctask {
	c.t.Helper()
	t := &ctask{itt: c.nextITT(), out: out}
	if read {
		t.in = make([]byte, edtl)
	}
	c.tasks[t.itt] = t
	p := newPDU(opSCSICmd)
	p.bhs[1] = 0x80 | 0x01 // F, SIMPLE
	if read {
		p.bhs[1] |= 0x40
	}
	var unsol int
	if out != nil {
		p.bhs[1] |= 0x20
		imm := 0
		if c.p.immediateData {
			imm = min(len(out), c.p.firstBurst, c.tgtRecv)
		}
		p.data = out[:imm]
		if !c.p.initialR2T && imm < len(out) {
			unsol = min(len(out), c.p.firstBurst) - imm
			if unsol > 0 {
				p.bhs[1] &^= 0x80
			}
		}
	}
	p.bhs[9] = c.lun
	p.put32(16, t.itt)
	p.put32(20, edtl)
	p.put32(24, c.cmdSN)
	p.put32(28, c.expStatSN)
	copy(p.bhs[32:], cdb)
	c.cmdSN++
	c.send(p)
	if unsol > 0 {
		c.sendData(t, len(p.data), unsol, reservedTag)
	}
	return t
}

// sendData sends n bytes of t.out from off as Data-Out PDUs.
func (c *client) sendData(t *ctask, off, n int, ttt uint32) {
	var sn uint32
	for end := off + n; off < end; {
		l := min(end-off, c.tgtRecv)
		d := newPDU(opDataOut)
		d.bhs[1] = 0
		if off+l == end {
			d.bhs[1] = 0x80
		}
		d.bhs[9] = c.lun
		d.put32(16, t.itt)
		d.put32(20, ttt)
		d.put32(28, c.expStatSN)
		d.put32(36, sn)
		d.put32(40, uint32(off))
		d.data = t.out[off : off+l]
		c.send(d)
		sn++
		off += l
	}
}

// wait processes PDUs until every task given is done.
func (c *client) wait(ts ...*ctask) {
	c.t.Helper()
	for {
		all := true
		for _, t := range ts {
			all = all && t.done
		}
		if all {
			return
		}
		p := c.mustRecv()
		c.handle(p)
	}
}

func (c *client) handle(p *pdu) {
	c.t.Helper()
	switch p.opcode() {
	case opR2T:
		t := c.tasks[p.itt()]
		if t == nil {
			c.t.Fatalf("R2T for unknown task 0x%x", p.itt())
		}
		c.sendData(t, int(p.u32(40)), int(p.u32(44)), p.u32(20))
	case opDataIn:
		t := c.tasks[p.itt()]
		if t == nil {
			c.t.Fatalf("Data-In for unknown task 0x%x", p.itt())
		}
		if len(p.data) > c.p.initiatorMaxRecv {
			c.t.Fatalf("Data-In of %d bytes exceeds our MaxRecvDataSegmentLength %d", len(p.data), c.p.initiatorMaxRecv)
		}
		copy(t.in[p.u32(40):], p.data)
		if p.flags()&1 != 0 {
			t.status, t.flags, t.residual, t.done = p.bhs[3], p.flags(), p.u32(44), true
			delete(c.tasks, t.itt)
		}
	case opSCSIResp:
		t := c.tasks[p.itt()]
		if t == nil {
			c.t.Fatalf("response for unknown task 0x%x", p.itt())
		}
		t.status, t.flags, t.residual, t.done = p.bhs[3], p.flags(), p.u32(44), true
		if len(p.data) >= 2 {
			n := int(binary.BigEndian.Uint16(p.data))
			t.sense = p.data[2 : 2+n]
		}
		delete(c.tasks, t.itt)
	case opNOPIn:
		if p.itt() == reservedTag {
			c.pings++
			if !c.noAnswer {
				r := newPDU(opNOPOut)
				r.bhs[0] |= 0x40
				r.put32(16, reservedTag)
				r.put32(20, p.u32(20))
				r.put32(24, c.cmdSN)
				r.put32(28, c.expStatSN)
				c.send(r)
			}
		}
	default:
		c.t.Fatalf("unexpected PDU opcode 0x%x", p.opcode())
	}
}

// read10/write10 CDBs.
func rw10(op byte, lba uint32, blocks uint16) []byte {
	cdb := make([]byte, 10)
	cdb[0] = op
	binary.BigEndian.PutUint32(cdb[2:], lba)
	binary.BigEndian.PutUint16(cdb[7:], blocks)
	return cdb
}

// logout logs out and expects the connection to close.
func (c *client) logout() {
	c.t.Helper()
	p := newPDU(opLogoutReq)
	p.bhs[0] |= 0x40
	p.put32(16, c.nextITT())
	p.put32(24, c.cmdSN)
	p.put32(28, c.expStatSN)
	c.send(p)
	r := c.mustRecv()
	if r.opcode() != opLogoutResp || r.bhs[2] != 0 {
		c.t.Fatalf("logout: opcode 0x%x response %d", r.opcode(), r.bhs[2])
	}
	if _, err := c.recv(); err == nil {
		c.t.Fatal("connection still open after logout")
	}
}

// text sends a Text Request and returns the answer's pairs.
func (c *client) text(kvs []keyValue) []keyValue {
	c.t.Helper()
	p := newPDU(opTextReq)
	p.bhs[0] |= 0x40
	p.put32(16, c.nextITT())
	p.put32(20, reservedTag)
	p.put32(24, c.cmdSN)
	p.put32(28, c.expStatSN)
	p.data = marshalText(kvs)
	c.send(p)
	var all []byte
	for {
		r := c.mustRecv()
		if r.opcode() != opTextResp {
			c.t.Fatalf("text: opcode 0x%x", r.opcode())
		}
		all = append(all, r.data...)
		if r.flags()&0x40 == 0 {
			break
		}
		q := newPDU(opTextReq)
		q.bhs[0] |= 0x40
		q.put32(16, r.itt())
		q.put32(20, r.u32(20))
		q.put32(24, c.cmdSN)
		c.send(q)
	}
	out, err := parseText(all)
	if err != nil {
		// SendTargets answers repeat TargetName: split by hand.
		out = nil
		for _, f := range splitNUL(all) {
			k, v, _ := cutEq(f)
			out = append(out, keyValue{k, v})
		}
	}
	return out
}

func splitNUL(b []byte) []string {
	var out []string
	start := 0
	for i, x := range b {
		if x == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

func cutEq(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func (t *ctask) String() string { return fmt.Sprintf("task 0x%x status 0x%x", t.itt, t.status) }
