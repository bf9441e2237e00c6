//go:build ceph_preview

package daemon

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bmi-go/bmi/service/core"
)

// A minimal iSCSI initiator (RFC 7143) for the reservation checks of
// TestGateways: libiscsi's tools cannot leave a persistent reservation in
// place across a take-over (iscsi-test-cu clears its own), and the
// package's full test initiator lives in service/iscsi's tests. It logs
// in with one-way CHAP as a chosen I_T nexus (initiator name and ISID,
// which a real initiator keeps when it logs in again), follows a login
// redirect, and sends one SCSI command at a time with its data as
// immediate data.

// SCSI status bytes.
const (
	scsiGood                = 0x00
	scsiCheckCondition      = 0x02
	scsiReservationConflict = 0x18
)

// iscsiSession is one logged-in session of the minimal initiator.
type iscsiSession struct {
	conn      net.Conn
	addr      string // where the session ended up (after a redirect)
	itt       uint32
	cmdSN     uint32
	expStatSN uint32
}

// iscsiLogin logs in to tg at addr as the I_T nexus initiator+isid with
// tg's CHAP secret, following one redirect.
func iscsiLogin(addr, initiator string, isid [6]byte, tg core.Target) (*iscsiSession, error) {
	for hop := 0; ; hop++ {
		s, to, err := loginAt(addr, initiator, isid, tg)
		if err != nil || to == "" {
			return s, err
		}
		if hop > 0 {
			return nil, fmt.Errorf("redirected twice (to %s)", to)
		}
		addr = to
	}
}

// loginAt runs one login at addr; a redirect returns its target address.
func loginAt(addr, initiator string, isid [6]byte, tg core.Target) (*iscsiSession, string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, "", err
	}
	s := &iscsiSession{conn: c, addr: addr, cmdSN: 1}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return nil, "", err
	}
	// Each step: the keys sent, the stages (CSG, NSG) and the T bit.
	step := func(csg, nsg byte, transit bool, kvs ...string) (map[string]string, error) {
		var data bytes.Buffer
		for _, kv := range kvs {
			data.WriteString(kv)
			data.WriteByte(0)
		}
		bhs := make([]byte, 48)
		bhs[0] = 0x43 // immediate Login Request
		bhs[1] = csg<<2 | nsg
		if transit {
			bhs[1] |= 0x80
		}
		copy(bhs[8:14], isid[:])
		binary.BigEndian.PutUint32(bhs[16:], s.itt)
		binary.BigEndian.PutUint32(bhs[24:], s.cmdSN)
		binary.BigEndian.PutUint32(bhs[28:], s.expStatSN)
		resp, text, err := s.exchange(bhs, data.Bytes())
		if err != nil {
			return nil, err
		}
		if resp[0]&0x3f != 0x23 {
			return nil, fmt.Errorf("opcode 0x%02x, not a Login Response", resp[0]&0x3f)
		}
		s.expStatSN = binary.BigEndian.Uint32(resp[24:]) + 1
		vals := map[string]string{}
		for _, kv := range strings.Split(string(text), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				vals[k] = v
			}
		}
		if st := binary.BigEndian.Uint16(resp[36:38]); st != 0 {
			vals["status"] = fmt.Sprintf("0x%04x", st)
		}
		return vals, nil
	}
	v, err := step(0, 1, false, "InitiatorName="+initiator, "TargetName="+tg.IQN, "SessionType=Normal", "AuthMethod=CHAP")
	if err != nil {
		return nil, "", err
	}
	if v["status"] == "0x0101" || v["status"] == "0x0102" {
		to, _, _ := strings.Cut(v["TargetAddress"], ",")
		return nil, to, nil
	}
	if v["status"] != "" || v["AuthMethod"] != "CHAP" {
		return nil, "", fmt.Errorf("login at %s: %v", addr, v)
	}
	if v, err = step(0, 1, false, "CHAP_A=5"); err != nil {
		return nil, "", err
	}
	id, err := strconv.ParseUint(v["CHAP_I"], 0, 8)
	if err != nil {
		return nil, "", fmt.Errorf("login at %s: CHAP_I: %v", addr, v)
	}
	chal, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(v["CHAP_C"]), "0x"))
	if err != nil {
		return nil, "", fmt.Errorf("login at %s: CHAP_C: %v", addr, v)
	}
	h := md5.New()
	h.Write([]byte{byte(id)})
	h.Write([]byte(tg.CHAPSecret))
	h.Write(chal)
	if v, err = step(0, 1, true, "CHAP_N="+tg.CHAPUser, "CHAP_R=0x"+hex.EncodeToString(h.Sum(nil))); err != nil {
		return nil, "", err
	}
	if v["status"] != "" {
		return nil, "", fmt.Errorf("login at %s: CHAP: %v", addr, v)
	}
	if v, err = step(1, 3, true, "HeaderDigest=None", "DataDigest=None", "MaxRecvDataSegmentLength=65536"); err != nil {
		return nil, "", err
	}
	if v["status"] != "" {
		return nil, "", fmt.Errorf("login at %s: operational stage: %v", addr, v)
	}
	ok = true
	return s, "", c.SetDeadline(time.Time{})
}

// exchange sends one PDU and reads the next one for the initiator.
func (s *iscsiSession) exchange(bhs, data []byte) ([]byte, []byte, error) {
	if err := s.write(bhs, data); err != nil {
		return nil, nil, err
	}
	return s.read()
}

func (s *iscsiSession) write(bhs, data []byte) error {
	n := len(data)
	bhs[5], bhs[6], bhs[7] = byte(n>>16), byte(n>>8), byte(n)
	for len(data)%4 != 0 {
		data = append(data, 0)
	}
	_, err := s.conn.Write(append(bhs, data...))
	return err
}

func (s *iscsiSession) read() ([]byte, []byte, error) {
	bhs := make([]byte, 48)
	if _, err := io.ReadFull(s.conn, bhs); err != nil {
		return nil, nil, err
	}
	dl := int(bhs[5])<<16 | int(bhs[6])<<8 | int(bhs[7])
	data := make([]byte, (int(bhs[4])*4+dl+3)&^3)
	if _, err := io.ReadFull(s.conn, data); err != nil {
		return nil, nil, err
	}
	return bhs, data[int(bhs[4])*4:][:dl], nil
}

// send sends a SCSI command (simple task attribute, LUN 0) with out as its
// immediate data, expecting up to in bytes back.
func (s *iscsiSession) send(cdb, out []byte, in int) error {
	s.itt++
	bhs := make([]byte, 48)
	bhs[0], bhs[1] = 0x01, 0x81 // SCSI Command, F, simple
	edtl := len(out)
	if in > 0 {
		bhs[1] |= 0x40
		edtl = in
	}
	if len(out) > 0 {
		bhs[1] |= 0x20
	}
	binary.BigEndian.PutUint32(bhs[16:], s.itt)
	binary.BigEndian.PutUint32(bhs[20:], uint32(edtl))
	binary.BigEndian.PutUint32(bhs[24:], s.cmdSN)
	binary.BigEndian.PutUint32(bhs[28:], s.expStatSN)
	copy(bhs[32:], cdb)
	s.cmdSN++
	return s.write(bhs, append([]byte(nil), out...))
}

// result reads the answer to the command sent last: its status and data.
func (s *iscsiSession) result() (byte, []byte, error) {
	var in []byte
	for {
		bhs, data, err := s.read()
		if err != nil {
			return 0, nil, err
		}
		switch bhs[0] & 0x3f {
		case 0x20: // NOP-In: a ping wants its answer
			if ttt := binary.BigEndian.Uint32(bhs[20:]); ttt != 0xffffffff {
				out := make([]byte, 48)
				out[0], out[1] = 0x40, 0x80
				binary.BigEndian.PutUint32(out[16:], 0xffffffff)
				copy(out[20:24], bhs[20:24])
				binary.BigEndian.PutUint32(out[24:], s.cmdSN)
				binary.BigEndian.PutUint32(out[28:], s.expStatSN)
				if err := s.write(out, nil); err != nil {
					return 0, nil, err
				}
			}
		case 0x25: // Data-In
			in = append(in, data...)
			if bhs[1]&0x01 != 0 {
				s.expStatSN = binary.BigEndian.Uint32(bhs[24:]) + 1
				return bhs[3], in, nil
			}
		case 0x21: // SCSI Response
			s.expStatSN = binary.BigEndian.Uint32(bhs[24:]) + 1
			return bhs[3], in, nil
		case 0x32: // Asynchronous Message
		default:
			return 0, nil, fmt.Errorf("opcode 0x%02x in answer to a command", bhs[0]&0x3f)
		}
	}
}

// do sends a command and waits for its result.
func (s *iscsiSession) do(cdb, out []byte, in int) (byte, []byte, error) {
	if err := s.conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return 0, nil, err
	}
	defer s.conn.SetDeadline(time.Time{})
	if err := s.send(cdb, out, in); err != nil {
		return 0, nil, err
	}
	return s.result()
}

func (s *iscsiSession) close() { s.conn.Close() }

// prOutCDB is PERSISTENT RESERVE OUT service action sa of type typ, and
// its parameter list: reservation key key, service action key sak.
func prOutCDB(sa, typ byte, key, sak uint64) (cdb, param []byte) {
	cdb = []byte{0x5f, sa, typ, 0, 0, 0, 0, 0, 24, 0}
	param = make([]byte, 24)
	binary.BigEndian.PutUint64(param, key)
	binary.BigEndian.PutUint64(param[8:], sak)
	return cdb, param
}

// prIn sends PERSISTENT RESERVE IN service action sa (0: READ KEYS, 1:
// READ RESERVATION).
func (s *iscsiSession) prIn(sa byte) ([]byte, error) {
	st, data, err := s.do([]byte{0x5e, sa, 0, 0, 0, 0, 0, 0x01, 0x00, 0}, nil, 256)
	if err != nil {
		return nil, err
	}
	if st != scsiGood {
		return nil, fmt.Errorf("PERSISTENT RESERVE IN 0x%x: status 0x%02x", sa, st)
	}
	return data, nil
}

// write10 writes one 512-byte block at lba and returns the status.
func (s *iscsiSession) write10(lba uint32, fill byte) (byte, error) {
	cdb := []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	binary.BigEndian.PutUint32(cdb[2:], lba)
	st, _, err := s.do(cdb, bytes.Repeat([]byte{fill}, 512), 0)
	return st, err
}
