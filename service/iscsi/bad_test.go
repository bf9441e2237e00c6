package iscsi

import "testing"

// TestBadInitiators: malformed or hostile input ends in a Reject or a
// dropped connection, never a crash or a hang, and the target keeps
// serving others.
func TestBadInitiators(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	vol := newMemVolume(1 << 20)
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	loggedIn := func(t *testing.T, keys ...keyValue) *client {
		c := dial(t, addr)
		if st, _ := c.login(loginOpts{target: testIQN(1), keys: keys}); st != 0 {
			t.Fatalf("login: 0x%04x", st)
		}
		return c
	}
	expectClosed := func(t *testing.T, c *client) {
		t.Helper()
		for {
			p, err := c.recv()
			if err != nil {
				return
			}
			if p.opcode() == opNOPIn {
				continue
			}
			t.Fatalf("connection still open, got opcode 0x%x", p.opcode())
		}
	}
	t.Run("garbage instead of a login", func(t *testing.T) {
		c := dial(t, addr)
		c.c.Write(make([]byte, 48)) // an all-zero NOP-Out during login
		r := c.mustRecv()
		if r.opcode() != opLoginResp || r.bhs[36] == 0 {
			t.Fatalf("opcode 0x%x status class %d, want a login reject", r.opcode(), r.bhs[36])
		}
		expectClosed(t, c)
	})
	t.Run("oversized data segment", func(t *testing.T) {
		c := loggedIn(t)
		p := newPDU(opNOPOut)
		p.bhs[0] |= 0x40
		p.put32(16, 1)
		p.data = make([]byte, ourMaxRecvDataSegment+4)
		c.send(p)
		expectClosed(t, c)
	})
	t.Run("unknown opcode", func(t *testing.T) {
		c := loggedIn(t)
		p := newPDU(0x1c)
		c.send(p)
		if r := c.mustRecv(); r.opcode() != opReject || r.bhs[2] != rejectNotSupported {
			t.Fatalf("opcode 0x%x reason %d", r.opcode(), r.bhs[2])
		}
	})
	t.Run("immediate data not negotiated", func(t *testing.T) {
		c := loggedIn(t, keyValue{"ImmediateData", "No"})
		c.p.immediateData = true // misbehave
		c.submit(rw10(0x2a, 0, 1), 512, false, make([]byte, 512))
		if r := c.mustRecv(); r.opcode() != opReject {
			t.Fatalf("opcode 0x%x", r.opcode())
		}
	})
	t.Run("data-out for an unknown task", func(t *testing.T) {
		c := loggedIn(t)
		c.sendData(&ctask{itt: 4242, out: make([]byte, 512)}, 0, 512, 7)
		if r := c.mustRecv(); r.opcode() != opReject {
			t.Fatalf("opcode 0x%x", r.opcode())
		}
	})
	t.Run("data beyond the expected length", func(t *testing.T) {
		c := loggedIn(t, keyValue{"InitialR2T", "Yes"}, keyValue{"ImmediateData", "No"})
		tk := c.submit(rw10(0x2a, 0, 1), 512, false, make([]byte, 512))
		r := c.mustRecv()
		if r.opcode() != opR2T {
			t.Fatalf("opcode 0x%x", r.opcode())
		}
		tk.out = make([]byte, 4096)
		c.sendData(tk, 0, 4096, r.u32(20))
		expectClosed(t, c)
	})
	t.Run("initiator vanishes mid-command", func(t *testing.T) {
		c := loggedIn(t, keyValue{"InitialR2T", "Yes"}, keyValue{"ImmediateData", "No"})
		c.submit(rw10(0x2a, 0, 64), 64*512, false, make([]byte, 64*512))
		if r := c.mustRecv(); r.opcode() != opR2T {
			t.Fatalf("opcode 0x%x", r.opcode())
		}
		c.c.Close()
		waitFor(t, func() bool { return sessionsOf(t, tg) == 0 })
	})
	// After all that, a well-behaved initiator is served.
	c := loggedIn(t)
	tk := c.submit(rw10(0x28, 0, 8), 4096, true, nil)
	c.wait(tk)
	if tk.status != statusGood {
		t.Fatalf("read: 0x%x", tk.status)
	}
}
