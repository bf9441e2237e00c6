package iscsi

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"context"
)

// Reject reasons (RFC 7143 §11.17.1).
const (
	rejectProtocolError = 0x04
	rejectNotSupported  = 0x05
	rejectInvalidField  = 0x09
	rejectOutOfResource = 0x0a
)

// session is one logged-in connection (one connection per session).
type session struct {
	t               *Target
	c               net.Conn
	br              *bufio.Reader
	exp             *export // nil for discovery
	login           *login
	p               params
	dig             digests
	nx              *nexus
	initiator, addr string
	since           time.Time
	isid            [6]byte

	mu       sync.Mutex
	statSN   uint32
	expCmdSN uint32
	maxAdv   uint32 // the highest MaxCmdSN advertised
	inflight int    // window slots in use
	held     map[uint32]*pdu
	tasks    map[uint32]*task
	nextTTT  uint32
	textBuf  []byte // text request continued with the C bit
	textOut  []byte // a text answer longer than one PDU
	textTTT  uint32

	out  output
	work chan *task
	// ready are received commands not yet handed to the workers: the
	// reader hands them over once it has processed every PDU already
	// received, so a task management request that arrived right behind a
	// command (an ABORT TASK) takes effect before the command runs.
	ready []*task

	writeBuf  atomic.Int64   // bytes of Data-Out buffers held (maxSessionWriteBuf)
	readBuf   atomic.Int64   // bytes of Data-In buffers of asynchronous reads (maxSessionReadBuf)
	async     sync.WaitGroup // asynchronous reads not finished
	lastRecv  atomic.Int64
	pingSent  atomic.Int64
	closing   atomic.Bool
	closeOnce sync.Once
	// fullFeature is set once the login is done and serve runs.
	fullFeature atomic.Bool
	// draining is set when the target stops gracefully: commands that
	// arrive from then on are not started (the initiator retries them
	// after it has logged in again).
	draining atomic.Bool
	done     chan struct{}
	bg       sync.WaitGroup // TMF waiters
}

// window returns the MaxCmdSN to advertise now (never lower than before).
func (s *session) window() uint32 {
	m := s.expCmdSN - 1 + uint32(max(s.t.cfg.QueueDepth-s.inflight, 0))
	if snaGT(m, s.maxAdv) {
		s.maxAdv = m
	}
	return s.maxAdv
}

// snaGT is serial number arithmetic a > b (RFC 1982, 32 bits).
func snaGT(a, b uint32) bool { return a != b && (a-b) < 1<<31 }

// close drops the connection; serve's reader sees it and shuts down.
func (s *session) close() {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.c.Close()
	})
}

// Async events of a graceful stop (RFC 7143 §11.9.1).
const asyncDropAllConnections = 3

// drain ends the session because the target stops on purpose (bmid
// stopping, restarting or being upgraded): commands received from now on
// are not started, an Async Message tells the initiator that the target
// drops the session's connections and to come back after Time2Wait, the
// commands already started finish and are answered (within DrainTimeout),
// and the connection closes. It runs in its own goroutine (context.AfterFunc).
func (s *session) drain() {
	s.draining.Store(true)
	if s.exp != nil {
		a := newPDU(opAsync)
		a.put32(16, reservedTag)
		a.bhs[36] = asyncDropAllConnections
		t2w := uint16(s.t.cfg.Time2Wait / time.Second)
		a.put16(40, t2w) // Parameter2: Time2Wait
		a.put16(42, 0)   // Parameter3: Time2Retain 0, no task state is kept (ErrorRecoveryLevel 0)
		s.out.post(outPDU{p: a, status: true})
		s.t.log.Info("iscsi session draining", "target", s.exp.IQN, "initiator", s.initiator, "remote", s.addr,
			"time2wait_s", t2w)
	}
	deadline := time.Now().Add(s.t.cfg.DrainTimeout)
	for {
		s.mu.Lock()
		n := len(s.tasks)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			s.t.log.Warn("iscsi session drain timed out; closing with commands in progress",
				"initiator", s.initiator, "remote", s.addr, "commands", n)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Wait for the answers already queued to be written before closing.
	s.out.flush(time.Until(deadline) + 100*time.Millisecond)
	s.close()
}

// reject answers a PDU we cannot take.
func (s *session) reject(p *pdu, reason byte) {
	r := newPDU(opReject)
	r.bhs[2] = reason
	r.put32(16, reservedTag)
	r.data = append([]byte(nil), p.bhs[:]...)
	s.send(outPDU{p: r, status: true})
}

// serveSession runs the full-feature phase until the connection ends.
func (s *session) serve(ctx context.Context) error {
	s.out.init(s, 2*s.t.cfg.QueueDepth+16)
	s.work = make(chan *task, 2*s.t.cfg.QueueDepth+16)
	s.held = map[uint32]*pdu{}
	s.tasks = map[uint32]*task{}
	s.lastRecv.Store(time.Now().UnixNano())
	var workers sync.WaitGroup
	if s.exp != nil {
		for range s.t.cfg.Workers {
			workers.Add(1)
			go func() { defer workers.Done(); s.worker() }()
		}
	}
	stopPing := make(chan struct{})
	go s.pinger(stopPing)
	s.fullFeature.Store(true)
	stop := context.AfterFunc(ctx, s.drain)

	err := s.readLoop()

	_ = s.c.SetWriteDeadline(time.Now().Add(shutWait))
	stop()
	close(stopPing)
	s.closing.Store(true)
	close(s.work)
	workers.Wait()
	s.async.Wait()
	s.bg.Wait()
	s.out.shut()
	s.close()
	return err
}

// errLogout ends the read loop after a Logout.
var errLogout = errors.New("logged out")

func (s *session) readLoop() error {
	defer s.startReady()
	for {
		if s.br.Buffered() == 0 {
			s.startReady()
		}
		p, err := readPDU(s.br, s.dig, ourMaxRecvDataSegment)
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			return err
		}
		s.lastRecv.Store(time.Now().UnixNano())
		s.pingSent.Store(0)
		switch p.opcode() {
		case opDataOut:
			if err := s.dataOut(p); err != nil {
				return err
			}
			continue
		case opNOPOut, opSCSICmd, opTMFReq, opTextReq, opLogoutReq:
		default:
			s.reject(p, rejectNotSupported)
			continue
		}
		for _, q := range s.admit(p) {
			if err := s.dispatch(q); err != nil {
				if errors.Is(err, errLogout) {
					return nil
				}
				return err
			}
		}
	}
}

// admit applies CmdSN ordering: it returns the PDUs to process now, in
// order. Commands outside the window are dropped silently (RFC 7143
// §4.2.2.1); in-window commands after a gap wait for it to be filled.
func (s *session) admit(p *pdu) []*pdu {
	if p.immediate() {
		return []*pdu{p}
	}
	sn := p.u32(24)
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn != s.expCmdSN {
		if snaGT(sn, s.expCmdSN) && !snaGT(sn, s.maxAdv) && len(s.held) < s.t.cfg.QueueDepth {
			s.held[sn] = p
		}
		return nil
	}
	out := []*pdu{p}
	s.expCmdSN++
	s.countSlot(p)
	for {
		q, ok := s.held[s.expCmdSN]
		if !ok {
			break
		}
		delete(s.held, s.expCmdSN)
		s.expCmdSN++
		s.countSlot(q)
		out = append(out, q)
	}
	return out
}

// countSlot takes a window slot for a non-immediate SCSI command; it is
// given back when its response is sent.
func (s *session) countSlot(p *pdu) {
	if p.opcode() == opSCSICmd && !p.immediate() {
		s.inflight++
	}
}

func (s *session) dispatch(p *pdu) error {
	switch p.opcode() {
	case opNOPOut:
		if p.itt() == reservedTag {
			return nil // the answer to our ping
		}
		r := newPDU(opNOPIn)
		copy(r.bhs[8:16], p.bhs[8:16])
		r.put32(16, p.itt())
		r.put32(20, reservedTag)
		r.data = p.data
		s.send(outPDU{p: r, status: true})
	case opSCSICmd:
		return s.scsiCommand(p)
	case opTMFReq:
		s.taskManagement(p)
	case opTextReq:
		s.text(p)
	case opLogoutReq:
		return s.logout(p)
	}
	return nil
}

// logout answers a Logout Request once every command has completed.
func (s *session) logout(p *pdu) error {
	s.waitTasks(nil)
	r := newPDU(opLogoutResp)
	r.put32(16, p.itt())
	reason := p.flags() & 0x7f
	if reason == 2 {
		r.bhs[2] = 2 // connection recovery is not supported
	}
	if reason != 2 && s.nx != nil {
		// The I_T nexus ends with this logout: its SPC-2 reservation must be
		// gone before the initiator reads the response, since it may reserve
		// again through another session at once (libiscsi's Reserve6.Logout).
		// The session's end releases it too; a second release is a no-op.
		s.exp.unit.nexusLost(s.nx)
	}
	s.send(outPDU{p: r, status: true})
	if reason == 2 {
		return nil
	}
	return errLogout
}

// pinger sends NOP-In pings when the initiator is silent and closes the
// session when a ping goes unanswered (a node that powered off).
func (s *session) pinger(stop chan struct{}) {
	tick := time.NewTicker(max(s.t.cfg.NopInterval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			if sent := s.pingSent.Load(); sent != 0 {
				if now.Sub(time.Unix(0, sent)) > s.t.cfg.NopTimeout {
					s.t.log.Warn("iscsi initiator stopped answering, dropping its session",
						"initiator", s.initiator, "remote", s.addr)
					s.close()
					return
				}
				continue
			}
			if now.Sub(time.Unix(0, s.lastRecv.Load())) < s.t.cfg.NopInterval {
				continue
			}
			r := newPDU(opNOPIn)
			r.put32(16, reservedTag)
			var tag [4]byte
			rand.Read(tag[:])
			r.put32(20, uint32(tag[0])<<24|uint32(tag[1])<<16|uint32(tag[2])<<8|uint32(tag[3])&0x7fffffff)
			s.pingSent.Store(now.UnixNano())
			s.out.post(outPDU{p: r})
		}
	}
}

// newTTT returns a target transfer tag (never the reserved one).
func (s *session) newTTT() uint32 {
	s.nextTTT++
	if s.nextTTT == reservedTag {
		s.nextTTT = 1
	}
	return s.nextTTT
}

func (s *session) String() string { return fmt.Sprintf("%s@%s", s.initiator, s.addr) }
