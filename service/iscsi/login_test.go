package iscsi

import (
	"bytes"
	"sort"
	"testing"
)

var (
	nodeCHAP   = &CHAP{User: "node7", Secret: "node7-secret-0123"}
	targetCHAP = &CHAP{User: "bmi-target", Secret: "target-secret-4567"}
)

// TestLoginSecurity: CHAP one-way and mutual, wrong secrets, ACLs by
// initiator name and address.
func TestLoginSecurity(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20), CHAP: nodeCHAP})
	mustExport(t, tg, Export{IQN: testIQN(2), Volume: newMemVolume(1 << 20), CHAP: nodeCHAP, MutualCHAP: targetCHAP})
	mustExport(t, tg, Export{IQN: testIQN(3), Volume: newMemVolume(1 << 20), Initiators: []string{"iqn.2026-11.org.test:node7"}})
	mustExport(t, tg, Export{IQN: testIQN(4), Volume: newMemVolume(1 << 20), Addresses: []string{"10.9.0.0/16"}})
	mustExport(t, tg, Export{IQN: testIQN(5), Volume: newMemVolume(1 << 20), Addresses: []string{"127.0.0.1"}})
	cases := map[string]struct {
		opts loginOpts
		want uint16
	}{
		"chap":                  {loginOpts{target: testIQN(1), chap: nodeCHAP}, loginOK},
		"chap wrong secret":     {loginOpts{target: testIQN(1), chap: &CHAP{User: "node7", Secret: "wrong-secret-000"}}, loginAuthFailed},
		"chap wrong user":       {loginOpts{target: testIQN(1), chap: &CHAP{User: "node8", Secret: nodeCHAP.Secret}}, loginAuthFailed},
		"chap not offered":      {loginOpts{target: testIQN(1), authOffer: "None"}, loginAuthFailed},
		"skip security":         {loginOpts{target: testIQN(1), skipSecurity: true}, loginAuthFailed},
		"mutual chap":           {loginOpts{target: testIQN(2), chap: nodeCHAP, mutual: targetCHAP}, loginOK},
		"mutual not configured": {loginOpts{target: testIQN(1), chap: nodeCHAP, mutual: targetCHAP}, loginAuthFailed},
		"acl initiator allowed": {loginOpts{target: testIQN(3), initiator: "iqn.2026-11.org.test:node7"}, loginOK},
		"acl foreign initiator": {loginOpts{target: testIQN(3), initiator: "iqn.2026-11.org.test:intruder"}, loginForbidden},
		"acl address refused":   {loginOpts{target: testIQN(4)}, loginForbidden},
		"acl address allowed":   {loginOpts{target: testIQN(5)}, loginOK},
		"unknown target":        {loginOpts{target: testIQN(9)}, loginNotFound},
		"no security, no chap":  {loginOpts{target: testIQN(5), skipSecurity: true}, loginOK},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cl := dial(t, addr)
			st, _ := cl.login(c.opts)
			if st != c.want {
				t.Fatalf("login status 0x%04x, want 0x%04x", st, c.want)
			}
			if st == loginOK {
				tk := cl.submit(rw10(0x28, 0, 1), 512, true, nil)
				cl.wait(tk)
				if tk.status != statusGood {
					t.Fatalf("read after login: 0x%x", tk.status)
				}
			}
		})
	}
}

// TestCHAPReplay: a response recorded from one login does not open
// another (every login gets a fresh challenge).
func TestCHAPReplay(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20), CHAP: nodeCHAP})
	first := func(c *client) (byte, []byte) {
		c.loginStep(c.loginPDU(0, 1, false, []keyValue{{"InitiatorName", "iqn.2026-11.org.test:init"},
			{"TargetName", testIQN(1)}, {"AuthMethod", "CHAP"}}))
		_, m := c.loginStep(c.loginPDU(0, 1, false, []keyValue{{"CHAP_A", "5"}}))
		id, err := parseCHAPID(m["CHAP_I"])
		if err != nil {
			t.Fatal(err)
		}
		chal, err := decodeBinary(m["CHAP_C"])
		if err != nil {
			t.Fatal(err)
		}
		return id, chal
	}
	c1 := dial(t, addr)
	id1, chal1 := first(c1)
	recorded := chapResponse(id1, nodeCHAP.Secret, chal1)
	c2 := dial(t, addr)
	id2, chal2 := first(c2)
	if id1 == id2 && bytes.Equal(chal1, chal2) {
		t.Fatal("two logins got the same challenge")
	}
	r, _ := c2.loginStep(c2.loginPDU(0, 1, true, []keyValue{{"CHAP_N", "node7"}, {"CHAP_R", encodeHex(recorded)}}))
	if st := uint16(r.bhs[36])<<8 | uint16(r.bhs[37]); st != loginAuthFailed {
		t.Fatalf("replayed response: status 0x%04x", st)
	}
}

// TestDiscovery: SendTargets=All lists only what the initiator may log
// in to.
func TestDiscovery(t *testing.T) {
	tg, addr := startTarget(t, Config{Portal: "192.0.2.1:3260"})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20), CHAP: nodeCHAP})
	mustExport(t, tg, Export{IQN: testIQN(2), Volume: newMemVolume(1 << 20), CHAP: &CHAP{User: "other", Secret: "other-secret-0123"}})
	mustExport(t, tg, Export{IQN: testIQN(3), Volume: newMemVolume(1 << 20), Initiators: []string{"iqn.2026-11.org.test:node7"}})
	mustExport(t, tg, Export{IQN: testIQN(4), Volume: newMemVolume(1 << 20)})
	cases := map[string]struct {
		opts loginOpts
		want []string
	}{
		"anonymous":       {loginOpts{}, []string{testIQN(4)}},
		"node7 with chap": {loginOpts{initiator: "iqn.2026-11.org.test:node7", chap: nodeCHAP}, []string{testIQN(1), testIQN(3), testIQN(4)}},
		"node7 no chap":   {loginOpts{initiator: "iqn.2026-11.org.test:node7"}, []string{testIQN(3), testIQN(4)}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cl := dial(t, addr)
			if st, _ := cl.login(c.opts); st != 0 {
				t.Fatalf("discovery login: 0x%04x", st)
			}
			var got []string
			for _, kv := range cl.text([]keyValue{{"SendTargets", "All"}}) {
				switch kv.Key {
				case "TargetName":
					got = append(got, kv.Value)
				case "TargetAddress":
					if kv.Value != "192.0.2.1:3260,1" {
						t.Errorf("TargetAddress = %q", kv.Value)
					}
				}
			}
			sort.Strings(got)
			if !equalStrings(got, c.want) {
				t.Fatalf("SendTargets = %v, want %v", got, c.want)
			}
			// SCSI commands are refused in a discovery session.
			cl.submit(rw10(0x28, 0, 1), 512, true, nil)
			if r := cl.mustRecv(); r.opcode() != opReject {
				t.Fatalf("SCSI in discovery: opcode 0x%x", r.opcode())
			}
			cl.logout()
		})
	}
	cl := dial(t, addr)
	if st, _ := cl.login(loginOpts{chap: &CHAP{User: "node7", Secret: "wrong-secret-000"}}); st != loginAuthFailed {
		t.Fatalf("discovery with a wrong secret: 0x%04x", st)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNegotiation drives the login state machine directly.
func TestNegotiation(t *testing.T) {
	tg, err := New(Config{Listen: []string{"127.0.0.1:0"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20)})
	base := []keyValue{{"InitiatorName", "iqn.2026-11.org.test:init"}, {"TargetName", testIQN(1)}}
	cases := map[string]struct {
		keys   []keyValue
		status uint16
		want   map[string]string
	}{
		"digests offered":   {keys: []keyValue{{"HeaderDigest", "CRC32C,None"}, {"DataDigest", "None,CRC32C"}}, want: map[string]string{"HeaderDigest": "CRC32C", "DataDigest": "None"}},
		"unknown digest":    {keys: []keyValue{{"HeaderDigest", "MD5"}}, want: map[string]string{"HeaderDigest": "Reject"}},
		"burst minimum":     {keys: []keyValue{{"MaxBurstLength", "999999999"}, {"FirstBurstLength", "4096"}}, want: map[string]string{"MaxBurstLength": "Reject", "FirstBurstLength": "4096"}},
		"burst clamp":       {keys: []keyValue{{"MaxBurstLength", "16777215"}}, want: map[string]string{"MaxBurstLength": "16777215"}},
		"booleans":          {keys: []keyValue{{"InitialR2T", "No"}, {"ImmediateData", "No"}, {"DataPDUInOrder", "No"}}, want: map[string]string{"InitialR2T": "No", "ImmediateData": "No", "DataPDUInOrder": "Yes"}},
		"bad boolean":       {keys: []keyValue{{"InitialR2T", "Maybe"}}, want: map[string]string{"InitialR2T": "Reject"}},
		"erl":               {keys: []keyValue{{"ErrorRecoveryLevel", "2"}, {"MaxConnections", "8"}}, want: map[string]string{"ErrorRecoveryLevel": "0", "MaxConnections": "1"}},
		"unknown key":       {keys: []keyValue{{"X-com.example.Foo", "1"}}, want: map[string]string{"X-com.example.Foo": "NotUnderstood"}},
		"declares recv len": {keys: []keyValue{{"MaxRecvDataSegmentLength", "65536"}}, want: map[string]string{"MaxRecvDataSegmentLength": "262144"}},
		"markers":           {keys: []keyValue{{"IFMarker", "Yes"}, {"OFMarkInt", "2048~8192"}}, want: map[string]string{"IFMarker": "No", "OFMarkInt": "Irrelevant"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			l := &login{t: tg, remote: "127.0.0.1"}
			cl := &client{cmdSN: 1}
			resp, err := l.respond(cl.loginPDU(1, 3, true, append(append([]keyValue(nil), base...), c.keys...)))
			st := uint16(resp.bhs[36])<<8 | uint16(resp.bhs[37])
			if st != c.status || (err == nil) != (c.status == 0) {
				t.Fatalf("status 0x%04x (%v), want 0x%04x", st, err, c.status)
			}
			got := map[string]string{}
			kvs, _ := parseText(resp.data)
			for _, kv := range kvs {
				got[kv.Key] = kv.Value
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
			if got["TargetPortalGroupTag"] != "1" {
				t.Errorf("no TargetPortalGroupTag in the first response: %v", got)
			}
		})
	}
	refusals := map[string]struct {
		first []keyValue
		tsih  uint16
		want  uint16
	}{
		"no initiator name": {first: []keyValue{{"TargetName", testIQN(1)}}, want: loginMissingParam},
		"no target name":    {first: []keyValue{{"InitiatorName", "iqn.2026-11.org.test:init"}}, want: loginMissingParam},
		"repeated key":      {first: []keyValue{{"InitiatorName", "a"}, {"InitiatorName", "b"}, {"TargetName", testIQN(1)}}, want: loginInitiatorError},
		"bad session type":  {first: []keyValue{{"InitiatorName", "a"}, {"SessionType", "Weird"}}, want: loginInitiatorError},
		"existing session":  {first: base, tsih: 7, want: loginNoSession},
	}
	for name, c := range refusals {
		t.Run(name, func(t *testing.T) {
			l := &login{t: tg, remote: "127.0.0.1"}
			p := (&client{cmdSN: 1}).loginPDU(0, 1, false, c.first)
			p.put16(14, c.tsih)
			resp, err := l.respond(p)
			st := uint16(resp.bhs[36])<<8 | uint16(resp.bhs[37])
			if err == nil || st != c.want || !l.done {
				t.Fatalf("status 0x%04x (%v), want 0x%04x", st, err, c.want)
			}
		})
	}
}

// FuzzLogin: any sequence of login PDUs ends in a response, never a panic.
func FuzzLogin(f *testing.F) {
	tg, err := New(Config{Listen: []string{"127.0.0.1:0"}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	if err := tg.Export(t0(), Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20), CHAP: nodeCHAP}); err != nil {
		f.Fatal(err)
	}
	c := &client{cmdSN: 1}
	seed := c.loginPDU(0, 1, true, []keyValue{{"InitiatorName", "iqn.x"}, {"TargetName", testIQN(1)}, {"AuthMethod", "CHAP"}})
	f.Add(seed.bhs[1], seed.data, []byte("CHAP_A=5\x00"), []byte("CHAP_N=node7\x00CHAP_R=0x00\x00"))
	f.Add(byte(0x87), []byte("InitiatorName=a\x00SessionType=Discovery\x00"), []byte("HeaderDigest=CRC32C\x00"), []byte(""))
	f.Fuzz(func(t *testing.T, flags byte, d1, d2, d3 []byte) {
		l := &login{t: tg, remote: "127.0.0.1"}
		for _, d := range [][]byte{d1, d2, d3} {
			p := c.loginPDU(0, 1, false, nil)
			p.bhs[1] = flags
			p.data = d
			if _, err := l.respond(p); err != nil || l.done {
				return
			}
		}
	})
}
