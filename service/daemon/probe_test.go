//go:build ceph_preview

package daemon

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Login statuses a probe sees (RFC 7143 §11.13.5).
const (
	probeOK          = 0x0000 // exported here: the login goes on
	probeRedirect    = 0x0101 // target moved temporarily
	probeNotFound    = 0x0203 // initiators give up on this one
	probeUnavailable = 0x0301 // initiators try again
)

// probeLogin sends the first Login Request of a session for iqn to addr
// as initiator and returns the status of the answer and its
// TargetAddress: whether addr's target exports iqn itself (0), redirects
// the login elsewhere, or refuses it. It goes no further (no
// authentication), so it never opens a session.
func probeLogin(addr, initiator, iqn string) (uint16, string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return 0, "", err
	}
	var data bytes.Buffer
	for _, kv := range []string{"InitiatorName=" + initiator, "TargetName=" + iqn, "SessionType=Normal", "AuthMethod=CHAP,None"} {
		data.WriteString(kv)
		data.WriteByte(0)
	}
	n := data.Len()
	for data.Len()%4 != 0 {
		data.WriteByte(0)
	}
	bhs := make([]byte, 48)
	bhs[0] = 0x43                                               // immediate Login Request
	bhs[1] = 0x81                                               // T, security stage to operational
	bhs[5], bhs[6], bhs[7] = byte(n>>16), byte(n>>8), byte(n)   // DataSegmentLength
	copy(bhs[8:14], []byte{0x80, 0x00, 0x42, 0x42, 0x00, 0x01}) // ISID (random qualifier)
	binary.BigEndian.PutUint32(bhs[16:], 1)                     // ITT
	if _, err := c.Write(append(bhs, data.Bytes()...)); err != nil {
		return 0, "", err
	}
	resp := make([]byte, 48)
	if _, err := io.ReadFull(c, resp); err != nil {
		return 0, "", err
	}
	if resp[0]&0x3f != 0x23 {
		return 0, "", fmt.Errorf("opcode 0x%02x, not a Login Response", resp[0]&0x3f)
	}
	dl := int(resp[5])<<16 | int(resp[6])<<8 | int(resp[7])
	text := make([]byte, (dl+3)&^3)
	if _, err := io.ReadFull(c, text); err != nil {
		return 0, "", err
	}
	addrKey := ""
	for _, kv := range strings.Split(string(text[:dl]), "\x00") {
		if v, ok := strings.CutPrefix(kv, "TargetAddress="); ok {
			addrKey = v
		}
	}
	return binary.BigEndian.Uint16(resp[36:38]), addrKey, nil
}

// placements maps each IQN to its gateway, as the database has it.
func placements(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.Query(`SELECT iqn, gateway FROM placements`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var iqn, gw string
		if err := rows.Scan(&iqn, &gw); err != nil {
			t.Fatal(err)
		}
		out[iqn] = gw
	}
	return out
}
