package iscsi

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// TestReadWriteInFlight writes and reads back random extents with many
// commands in flight, under each way of moving write data.
func TestReadWriteInFlight(t *testing.T) {
	cases := map[string][]keyValue{
		"defaults":         nil,
		"unsolicited data": {{"InitialR2T", "No"}, {"ImmediateData", "Yes"}, {"FirstBurstLength", "65536"}},
		"R2T only":         {{"InitialR2T", "Yes"}, {"ImmediateData", "No"}},
		"small bursts":     {{"MaxBurstLength", "8192"}, {"MaxOutstandingR2T", "4"}, {"MaxRecvDataSegmentLength", "4096"}},
		"digests":          {{"HeaderDigest", "CRC32C,None"}, {"DataDigest", "CRC32C,None"}},
		// The keys iPXE's initiator sends (src/net/tcp/iscsi.c).
		"ipxe keys": {{"HeaderDigest", "None"}, {"DataDigest", "None"}, {"MaxConnections", "1"}, {"InitialR2T", "Yes"},
			{"ImmediateData", "No"}, {"MaxRecvDataSegmentLength", "8192"}, {"MaxBurstLength", "262144"},
			{"FirstBurstLength", "65536"}, {"DefaultTime2Wait", "0"}, {"DefaultTime2Retain", "0"},
			{"MaxOutstandingR2T", "1"}, {"DataPDUInOrder", "Yes"}, {"DataSequenceInOrder", "Yes"}, {"ErrorRecoveryLevel", "0"}},
		"large segments": {{"MaxRecvDataSegmentLength", "262144"}, {"MaxBurstLength", "1048576"}, {"FirstBurstLength", "262144"}, {"InitialR2T", "No"}},
	}
	for name, keys := range cases {
		t.Run(name, func(t *testing.T) {
			tg, addr := startTarget(t, Config{QueueDepth: 16, Workers: 4})
			vol := newMemVolume(8 << 20)
			mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
			c := dial(t, addr)
			if st, _ := c.login(loginOpts{target: testIQN(1), keys: keys}); st != 0 {
				t.Fatalf("login status 0x%04x", st)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			want := make([]byte, 8<<20)
			// 16 writes of up to 256 KiB, all in flight at once.
			var ts []*ctask
			for i := range 16 {
				blocks := uint16(1 + rng.IntN(512))
				lba := uint32(i) * 1024 // disjoint extents
				buf := make([]byte, int(blocks)*512)
				for j := range buf {
					buf[j] = byte(rng.Uint32())
				}
				copy(want[lba*512:], buf)
				ts = append(ts, c.submit(rw10(0x2a, lba, blocks), uint32(len(buf)), false, buf))
			}
			c.wait(ts...)
			for _, tk := range ts {
				if tk.status != statusGood {
					t.Fatalf("%v: sense %x", tk, tk.sense)
				}
			}
			if !bytes.Equal(vol.snapshot(), want) {
				t.Fatal("volume content differs from what was written")
			}
			ts = ts[:0]
			for i := range 16 {
				ts = append(ts, c.submit(rw10(0x28, uint32(i)*1024, 512), 512*512, true, nil))
			}
			c.wait(ts...)
			for i, tk := range ts {
				if tk.status != statusGood || !bytes.Equal(tk.in, want[i*1024*512:(i*1024+512)*512]) {
					t.Fatalf("read %d: status 0x%x, data differs: %v", i, tk.status, !bytes.Equal(tk.in, want[i*1024*512:(i*1024+512)*512]))
				}
			}
			c.logout()
		})
	}
}

// TestWindowAndNop: MaxCmdSN follows the queue depth, a command outside
// the window gets no answer, NOP-Out is echoed.
func TestWindowAndNop(t *testing.T) {
	tg, addr := startTarget(t, Config{QueueDepth: 8})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20)})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login status 0x%04x", st)
	}
	if got, want := c.maxCmdSN, c.cmdSN+7; got != want {
		t.Errorf("MaxCmdSN = %d, want %d (ExpCmdSN %d + depth 8 - 1)", got, want, c.cmdSN)
	}
	// A command far beyond the window is dropped silently.
	saved := c.cmdSN
	c.cmdSN += 100
	c.submit(rw10(0x28, 0, 1), 512, true, nil)
	c.cmdSN = saved
	delete(c.tasks, c.itt)
	// A NOP-Out with a ping payload comes back with the same data.
	p := newPDU(opNOPOut)
	p.bhs[0] |= 0x40
	p.put32(16, c.nextITT())
	p.put32(20, reservedTag)
	p.put32(24, c.cmdSN)
	p.data = []byte("ping-data")
	c.send(p)
	r := c.mustRecv()
	if r.opcode() != opNOPIn || r.itt() != p.itt() || string(r.data) != "ping-data" {
		t.Fatalf("NOP-In: opcode 0x%x itt %d data %q", r.opcode(), r.itt(), r.data)
	}
	tk := c.submit(rw10(0x28, 0, 1), 512, true, nil)
	c.wait(tk)
	if tk.status != statusGood {
		t.Fatalf("command after the dropped one: status 0x%x", tk.status)
	}
}

// TestTargetPingsSilentInitiator: a silent initiator is pinged; one that
// never answers (a powered-off node) loses its session.
func TestTargetPingsSilentInitiator(t *testing.T) {
	tg, addr := startTarget(t, Config{NopInterval: 200 * time.Millisecond, NopTimeout: time.Second})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20)})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login status 0x%04x", st)
	}
	// Answering client: pinged, session kept.
	deadline := time.Now().Add(2 * time.Second)
	for c.pings < 2 && time.Now().Before(deadline) {
		c.handle(c.mustRecv())
	}
	if c.pings < 2 {
		t.Fatalf("pings = %d", c.pings)
	}
	if n := sessionsOf(t, tg); n != 1 {
		t.Fatalf("sessions = %d, want 1", n)
	}
	// Silent client: dropped.
	c.noAnswer = true
	for {
		p, err := c.recv()
		if err != nil {
			break
		}
		c.handle(p)
	}
	waitFor(t, func() bool { return sessionsOf(t, tg) == 0 })
}

func sessionsOf(t testing.TB, tg *Target) int {
	ls, err := tg.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range ls {
		n += len(l.Sessions)
	}
	return n
}

// unexportWithin unexports iqn and fails the test if that takes longer
// than d (a session that never ends would hold it forever).
func unexportWithin(t testing.TB, tg *Target, iqn string, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- tg.Unexport(context.Background(), iqn) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(d):
		t.Fatalf("Unexport of %s still waiting after %v", iqn, d)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTaskManagement: ABORT TASK of an unknown task, LUN RESET, a LUN
// that does not exist.
func TestTaskManagement(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20)})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login status 0x%04x", st)
	}
	tmf := func(fn byte, lun byte, rtt, refCmdSN uint32) byte {
		p := newPDU(opTMFReq)
		p.bhs[0] |= 0x40
		p.bhs[1] = 0x80 | fn
		p.bhs[9] = lun
		p.put32(16, c.nextITT())
		p.put32(20, rtt)
		p.put32(24, c.cmdSN)
		p.put32(32, refCmdSN)
		c.send(p)
		r := c.mustRecv()
		if r.opcode() != opTMFResp || r.itt() != p.itt() {
			t.Fatalf("TMF: opcode 0x%x itt %d", r.opcode(), r.itt())
		}
		return r.bhs[2]
	}
	if got := tmf(tmfAbortTask, 0, 999, c.cmdSN+5); got != tmfNoTask {
		t.Errorf("abort of an unknown task: %d, want %d", got, tmfNoTask)
	}
	tk := c.submit(rw10(0x28, 0, 1), 512, true, nil)
	c.wait(tk)
	// RFC 7143 §11.6.1 c): the answered task's CmdSN is below ExpCmdSN,
	// outside the window.
	if got := tmf(tmfAbortTask, 0, tk.itt, c.cmdSN-1); got != tmfNoTask {
		t.Errorf("abort of an answered task: %d, want %d (task does not exist)", got, tmfNoTask)
	}
	// b): a command lost on its way (CmdSN inside the window, before the
	// request's) counts as received: the window moves past it.
	lost := c.cmdSN
	c.cmdSN++
	if got := tmf(tmfAbortTask, 0, 4242, lost); got != tmfComplete {
		t.Errorf("abort of a command not received: %d, want %d", got, tmfComplete)
	}
	after := c.submit(rw10(0x28, 0, 1), 512, true, nil)
	c.wait(after)
	if after.status != statusGood {
		t.Errorf("command after the aborted CmdSN: %v", after)
	}
	if got := tmf(tmfLUNReset, 0, reservedTag, 0); got != tmfComplete {
		t.Errorf("LUN reset: %d", got)
	}
	if got := tmf(tmfLUNReset, 3, reservedTag, 0); got != tmfNoLUN {
		t.Errorf("LUN reset of LUN 3: %d, want %d", got, tmfNoLUN)
	}
	if got := tmf(tmfTargetCold, 0, reservedTag, 0); got != tmfNotSupported {
		t.Errorf("cold reset: %d, want %d", got, tmfNotSupported)
	}
}

// TestSCSIErrors: I/O beyond capacity, a missing LUN and a failing volume
// give CHECK CONDITION with sense, never a crash.
func TestSCSIErrors(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	vol := newMemVolume(1 << 20)
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login status 0x%04x", st)
	}
	check := func(name string, tk *ctask, key byte, asc uint16) {
		t.Helper()
		c.wait(tk)
		if tk.status != statusCheckCondition || len(tk.sense) < 14 || tk.sense[2]&0xf != key ||
			uint16(tk.sense[12])<<8|uint16(tk.sense[13]) != asc {
			t.Errorf("%s: status 0x%x sense %x, want key %x asc %04x", name, tk.status, tk.sense, key, asc)
		}
	}
	check("read beyond the end", c.submit(rw10(0x28, 2048, 1), 512, true, nil), 0x05, 0x2100)
	check("write beyond the end", c.submit(rw10(0x2a, 2047, 2), 1024, false, make([]byte, 1024)), 0x05, 0x2100)
	p := c.submit([]byte{0x00, 0, 0, 0, 0, 0}, 0, false, nil) // TEST UNIT READY
	c.wait(p)
	if p.status != statusGood {
		t.Errorf("TEST UNIT READY: 0x%x", p.status)
	}
	vol.setFail(true)
	check("read of a failing volume", c.submit(rw10(0x28, 0, 1), 512, true, nil), 0x03, 0x1100)
	check("write to a failing volume", c.submit(rw10(0x2a, 0, 1), 512, false, make([]byte, 512)), 0x03, 0x0c00)
	vol.setFail(false)
	tk := c.submit(rw10(0x28, 0, 1), 512, true, nil)
	c.wait(tk)
	if tk.status != statusGood {
		t.Errorf("read after the volume recovered: 0x%x", tk.status)
	}
}

// TestUnexportClosesSessions: Unexport ends sessions, refuses new logins
// and closes the volume; List shows sessions while they last.
func TestUnexportClosesSessions(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	vol := newMemVolume(1 << 20)
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: vol})
	mustExport(t, tg, Export{IQN: testIQN(2), Volume: newMemVolume(1 << 20)})
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1), initiator: "iqn.2026-11.org.test:node7"}); st != 0 {
		t.Fatalf("login status 0x%04x", st)
	}
	ls, err := tg.List(context.Background())
	if err != nil || len(ls) != 2 || ls[0].IQN != testIQN(1) || len(ls[0].Sessions) != 1 ||
		ls[0].Sessions[0].Initiator != "iqn.2026-11.org.test:node7" || ls[0].Size != 1<<20 || len(ls[1].Sessions) != 0 {
		t.Fatalf("List = %+v, %v", ls, err)
	}
	if err := tg.Unexport(context.Background(), testIQN(1)); err != nil {
		t.Fatal(err)
	}
	if !vol.isClosed() {
		t.Error("volume not closed")
	}
	if _, err := c.recv(); err == nil {
		t.Error("session still open after unexport")
	}
	c2 := dial(t, addr)
	if st, _ := c2.login(loginOpts{target: testIQN(1)}); st != loginNotFound {
		t.Errorf("login to an unexported target: 0x%04x, want 0x%04x", st, loginNotFound)
	}
	if err := tg.Unexport(context.Background(), testIQN(1)); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("second unexport: %v", err)
	}
	if err := tg.Export(context.Background(), Export{IQN: testIQN(2), Volume: newMemVolume(1 << 20)}); !errors.Is(err, fault.ErrExists) {
		t.Errorf("export twice: %v", err)
	}
}

// TestServeBusyPort: a busy port is an error from Serve, not an exit.
func TestServeBusyPort(t *testing.T) {
	_, addr := startTarget(t, Config{})
	tg2, err := New(Config{Listen: []string{addr}}, nil)
	if err == nil {
		err = tg2.Serve(context.Background())
	}
	if !errors.Is(err, fault.ErrUnavailable) {
		t.Fatalf("Serve on a busy port: %v", err)
	}
}

// TestExportValidation: bad exports are refused and change nothing.
func TestExportValidation(t *testing.T) {
	tg, err := New(Config{Listen: []string{"127.0.0.1:0"}, RequireCHAP: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := &CHAP{User: "node7", Secret: "0123456789abcdef"}
	cases := map[string]Export{
		"bad iqn":      {IQN: "not-an-iqn", Volume: newMemVolume(4096), CHAP: good},
		"no volume":    {IQN: testIQN(1), CHAP: good},
		"empty volume": {IQN: testIQN(1), Volume: newMemVolume(0), CHAP: good},
		"no chap":      {IQN: testIQN(1), Volume: newMemVolume(4096)},
		"short secret": {IQN: testIQN(1), Volume: newMemVolume(4096), CHAP: &CHAP{User: "u", Secret: "short"}},
		"same secrets": {IQN: testIQN(1), Volume: newMemVolume(4096), CHAP: good, MutualCHAP: good},
		"bad address":  {IQN: testIQN(1), Volume: newMemVolume(4096), CHAP: good, Addresses: []string{"10.0.0.300"}},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			if err := tg.Export(context.Background(), e); !errors.Is(err, fault.ErrInvalid) {
				t.Fatalf("Export: %v, want invalid", err)
			}
		})
	}
	if ls, _ := tg.List(context.Background()); len(ls) != 0 {
		t.Fatalf("List after refused exports = %v", ls)
	}
}

func TestIQN(t *testing.T) {
	cases := map[string]struct {
		prefix, uid, disk, want string
		ok                      bool
	}{
		"simple":     {"iqn.2026-11.org.bmi", "3f2a", "node7-os", "iqn.2026-11.org.bmi:3f2a.node7-os", true},
		"upper case": {"iqn.2026-11.org.bmi", "AB", "Disk1", "iqn.2026-11.org.bmi:ab.disk1", true},
		"no disk":    {"iqn.2026-11.org.bmi", "ab", "", "", false},
		"bad prefix": {"eui.1234", "ab", "d", "", false},
		"space":      {"iqn.2026-11.org.bmi", "a b", "d", "", false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := diskIQN(c.prefix, c.uid, c.disk)
			if (err == nil) != c.ok || got != c.want {
				t.Fatalf("IQN = %q, %v", got, err)
			}
		})
	}
}

var _ = strconv.Itoa

// TestSessionReinstatement: a node that logs in again with the same ISID
// (it rebooted without logging out) replaces its old session.
func TestSessionReinstatement(t *testing.T) {
	tg, addr := startTarget(t, Config{})
	mustExport(t, tg, Export{IQN: testIQN(1), Volume: newMemVolume(1 << 20)})
	old := dial(t, addr)
	if st, _ := old.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("login: 0x%04x", st)
	}
	c := dial(t, addr)
	if st, _ := c.login(loginOpts{target: testIQN(1)}); st != 0 {
		t.Fatalf("second login: 0x%04x", st)
	}
	if _, err := old.recv(); err == nil {
		t.Fatal("old session still open")
	}
	waitFor(t, func() bool { return sessionsOf(t, tg) == 1 })
	tk := c.submit(rw10(0x28, 0, 1), 512, true, nil)
	c.wait(tk)
	if tk.status != statusGood {
		t.Fatalf("read on the new session: 0x%x", tk.status)
	}
}
