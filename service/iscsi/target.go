package iscsi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// Config configures a Target.
type Config struct {
	// Listen is the list of host:port addresses to listen on; Serve binds
	// exactly these.
	Listen []string
	// Portal is the host:port announced in SendTargets answers; empty means
	// the address the initiator connected to.
	Portal string
	// RequireCHAP refuses exports without CHAP credentials and discovery
	// sessions without CHAP.
	RequireCHAP bool
	// QueueDepth is the number of commands a session may have in flight
	// (the CmdSN window); default 64.
	QueueDepth int
	// Workers is the number of commands a session executes at once; default 16.
	Workers int
	// NopInterval is how long a connection may stay silent before the target
	// pings it with a NOP-In; default 5s.
	NopInterval time.Duration
	// NopTimeout is how long the target waits for the answer to its ping
	// before it drops the connection (a node that powered off); default 10s.
	NopTimeout time.Duration
	// LoginTimeout bounds the login phase; default 15s.
	LoginTimeout time.Duration
	// DrainTimeout bounds a graceful stop (Serve's context ending): how
	// long commands already running may take to finish before the
	// connections close; default 5s.
	DrainTimeout time.Duration
	// Time2Wait is what the Async Message of a graceful stop tells
	// initiators to wait before they log in again (whole seconds, at most
	// 3600); default 1s, about what a bmid restart takes.
	Time2Wait time.Duration
	// Reservations keeps the targets' SCSI reservations across restarts;
	// nil keeps them in memory only, until the target is unexported.
	Reservations ReservationStore
	// Guard, when set, may refuse logins up front and hears every outcome.
	Guard LoginGuard
	// Observer, when set, hears logins, commands and aborts (metrics).
	Observer Observer
	// Logins, when set, hears every login's outcome with its initiator
	// and session (after Guard): the nodes' boot timeline.
	Logins LoginObserver
	// Locator, when set, is asked where a target this Target does not
	// export is served (several gateways, each exporting the disks placed
	// on it): a login for it is redirected there.
	Locator Locator
	// Directory, when set, lists the targets the other gateways of the
	// group export: a discovery session here lists them too, each at the
	// portal that serves it.
	Directory Directory
}

func (c *Config) setDefaults() {
	if c.QueueDepth <= 0 {
		c.QueueDepth = 64
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.NopInterval <= 0 {
		c.NopInterval = 5 * time.Second
	}
	if c.NopTimeout <= 0 {
		c.NopTimeout = 10 * time.Second
	}
	if c.LoginTimeout <= 0 {
		c.LoginTimeout = 15 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.Time2Wait <= 0 {
		c.Time2Wait = time.Second
	}
	c.Time2Wait = min(c.Time2Wait.Round(time.Second), 3600*time.Second)
}

// Export describes one target to export.
type Export struct {
	// IQN is the target name (service/core builds it: core.IQN).
	IQN string
	// Volume is the disk, exported as LUN 0. The Target closes it at Unexport.
	Volume Volume
	// CHAP, if set, is what the initiator must authenticate with.
	CHAP *CHAP
	// MutualCHAP, if set, is what the target answers a mutual challenge with.
	MutualCHAP *CHAP
	// Initiators lists the initiator IQNs allowed to log in; empty: any.
	Initiators []string
	// Addresses lists the source addresses or prefixes (e.g. "10.0.0.7",
	// "10.0.0.0/24") allowed to log in; empty: any.
	Addresses []string
}

// SessionInfo describes one logged-in session.
type SessionInfo struct {
	// Initiator is the initiator's IQN.
	Initiator string
	// Address is the initiator's host:port.
	Address string
	// Since is when the login completed.
	Since time.Time
}

// TargetInfo describes one exported target.
type TargetInfo struct {
	// IQN is the target name.
	IQN string
	// Size is the capacity of LUN 0 in bytes.
	Size uint64
	// CHAP says whether logins need CHAP.
	CHAP bool
	// Sessions are the logged-in normal sessions.
	Sessions []SessionInfo
}

// iqnRE is the iqn. form of RFC 3720 §3.2.6.3.1 (lower case).
var iqnRE = regexp.MustCompile(`^iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[a-z0-9.:_-]+)?$`)

// ValidIQN reports whether name is a well-formed iqn. name of at most 223 bytes.
func ValidIQN(name string) bool { return len(name) <= 223 && iqnRE.MatchString(name) }

// export is an Export with its runtime state.
type export struct {
	Export
	unit     *logicalUnit
	key      string
	prefixes []netip.Prefix
	sessions map[*session]struct{}
	acl      atomic.Pointer[[]string] // set by SetInitiators; replaces Initiators
}

// allows applies the ACL.
func (e *export) allows(initiator, addr string) bool {
	if p := e.acl.Load(); p != nil {
		if !contains(*p, initiator) {
			return false
		}
	} else if len(e.Initiators) > 0 && !contains(e.Initiators, initiator) {
		return false
	}
	if len(e.prefixes) == 0 {
		return true
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range e.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// deviceIDs are unique in the process: gotgt keys reservations by them.
var deviceIDs atomic.Uint64

// Target is the iSCSI target service.
type Target struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	exports map[string]*export
	conns   map[net.Conn]*session // nil until the connection's session exists
	serving bool
	tsih    uint16
	sessWG  sync.WaitGroup
}

// New returns a Target; Serve starts it. A nil log discards messages.
func New(cfg Config, log *slog.Logger) (*Target, error) {
	if len(cfg.Listen) == 0 {
		return nil, fault.Errorf(fault.Invalid, "iscsi: no listen address")
	}
	for _, a := range cfg.Listen {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fault.Errorf(fault.Invalid, "iscsi: listen address %q: %v", a, err)
		}
	}
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	setupLogging(log)
	registerStore()
	return &Target{cfg: cfg, log: log, exports: map[string]*export{}, conns: map[net.Conn]*session{}}, nil
}

// checkAccess checks an export's credentials and parses its address ACL.
func checkAccess(e Export) ([]netip.Prefix, error) {
	for _, c := range []*CHAP{e.CHAP, e.MutualCHAP} {
		if c != nil && (c.User == "" || len(c.Secret) < minCHAPSecret || len(c.Secret) > 255) {
			return nil, fault.Errorf(fault.Invalid, "target %s: CHAP needs a user and a secret of %d to 255 bytes", e.IQN, minCHAPSecret)
		}
	}
	if e.MutualCHAP != nil && e.CHAP == nil {
		return nil, fault.Errorf(fault.Invalid, "target %s: mutual CHAP needs one-way CHAP too", e.IQN)
	}
	if e.CHAP != nil && e.MutualCHAP != nil && e.CHAP.Secret == e.MutualCHAP.Secret {
		return nil, fault.Errorf(fault.Invalid, "target %s: the mutual CHAP secret must differ from the initiator's", e.IQN)
	}
	var prefixes []netip.Prefix
	for _, a := range e.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ip, err2 := netip.ParseAddr(a)
			if err2 != nil {
				return nil, fault.Errorf(fault.Invalid, "target %s: bad initiator address %q", e.IQN, a)
			}
			p = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
		}
		prefixes = append(prefixes, p)
	}
	return prefixes, nil
}

// Export adds a target at runtime.
func (t *Target) Export(ctx context.Context, e Export) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !ValidIQN(e.IQN) {
		return fault.Errorf(fault.Invalid, "invalid target name %q", e.IQN)
	}
	if e.Volume == nil {
		return fault.Errorf(fault.Invalid, "target %s: no volume", e.IQN)
	}
	if e.Volume.Size() < 1<<blockShift {
		return fault.Errorf(fault.Invalid, "target %s: volume of %d bytes is too small", e.IQN, e.Volume.Size())
	}
	if t.cfg.RequireCHAP && e.CHAP == nil {
		return fault.Errorf(fault.Invalid, "target %s: CHAP credentials are required", e.IQN)
	}
	prefixes, err := checkAccess(e)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.exports[e.IQN]; ok {
		return fault.Errorf(fault.Exists, "target %s is already exported", e.IQN)
	}
	id := deviceIDs.Add(1)
	key := fmt.Sprintf("vol%d", id)
	u, err := newLogicalUnit(ctx, e.IQN, key, id, e.Volume, t.cfg.Reservations, t.log)
	if err != nil {
		return fault.Errorf(fault.Internal, "export %s: %v", e.IQN, err)
	}
	t.exports[e.IQN] = &export{Export: e, unit: u, key: key, prefixes: prefixes, sessions: map[*session]struct{}{}}
	t.log.Info("iscsi target exported", "iqn", e.IQN, "size", e.Volume.Size(), "chap", e.CHAP != nil)
	return nil
}

// Unexport removes a target: new logins are refused at once, its sessions
// are closed (commands in flight finish first) and its volume is closed.
func (t *Target) Unexport(ctx context.Context, iqn string) error {
	t.mu.Lock()
	e, ok := t.exports[iqn]
	if ok {
		delete(t.exports, iqn)
	}
	var sess []*session
	if ok {
		for s := range e.sessions {
			sess = append(sess, s)
		}
	}
	t.mu.Unlock()
	if !ok {
		return fault.Errorf(fault.NotFound, "target %s is not exported", iqn)
	}
	for _, s := range sess {
		s.close()
	}
	for _, s := range sess {
		select {
		case <-s.done:
		case <-ctx.Done():
			return fmt.Errorf("unexport %s: waiting for its sessions: %w", iqn, ctx.Err())
		}
	}
	e.unit.release(e.key)
	if err := e.Volume.Close(); err != nil {
		return fmt.Errorf("unexport %s: close its volume: %w", iqn, err)
	}
	t.log.Info("iscsi target unexported", "iqn", iqn, "sessions_closed", len(sess))
	return nil
}

// ReleaseReservations forgets every SCSI reservation of the target iqn,
// exported or not, in memory and in the ReservationStore: the disk is
// deprovisioned. (service/store also forgets them with the target's row.)
func (t *Target) ReleaseReservations(ctx context.Context, iqn string) error {
	if e := t.lookup(iqn); e != nil {
		e.unit.mu.Lock()
		err := e.unit.res.forget(ctx)
		e.unit.mu.Unlock()
		if err != nil {
			return fmt.Errorf("release the reservations of %s: %w", iqn, err)
		}
		return nil
	}
	if t.cfg.Reservations == nil {
		return nil
	}
	if err := t.cfg.Reservations.DeleteReservations(ctx, iqn); err != nil {
		return fmt.Errorf("release the reservations of %s: %w", iqn, err)
	}
	return nil
}

// Has reports whether iqn is exported.
func (t *Target) Has(iqn string) bool { return t.lookup(iqn) != nil }

// List returns the exported targets, sorted by name, with their sessions.
func (t *Target) List(ctx context.Context) ([]TargetInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]TargetInfo, 0, len(t.exports))
	for _, e := range t.exports {
		ti := TargetInfo{IQN: e.IQN, Size: e.unit.size(), CHAP: e.CHAP != nil, Sessions: []SessionInfo{}}
		for s := range e.sessions {
			ti.Sessions = append(ti.Sessions, SessionInfo{Initiator: s.initiator, Address: s.addr, Since: s.since})
		}
		sort.Slice(ti.Sessions, func(i, j int) bool { return ti.Sessions[i].Address < ti.Sessions[j].Address })
		out = append(out, ti)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IQN < out[j].IQN })
	return out, nil
}

// Close unexports every target, closing their volumes. Call it after Serve
// has returned.
func (t *Target) Close() error {
	t.mu.Lock()
	var names []string
	for n := range t.exports {
		names = append(names, n)
	}
	t.mu.Unlock()
	var errs []error
	for _, n := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs = append(errs, t.Unexport(ctx, n))
		cancel()
	}
	return errors.Join(errs...)
}

func (t *Target) lookup(iqn string) *export {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.exports[iqn]
}

func (t *Target) requireCHAP() bool { return t.cfg.RequireCHAP }

func (t *Target) anyCHAP() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.exports {
		if e.CHAP != nil {
			return true
		}
	}
	return false
}

// chapExports returns the exports whose CHAP user is user.
func (t *Target) chapExports(user string) []*export {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*export
	for _, e := range t.exports {
		if e.CHAP != nil && e.CHAP.User == user {
			out = append(out, e)
		}
	}
	return out
}

// visible returns the targets a discovery session may see, sorted: this
// Target's and those other gateways export (Config.Directory).
func (t *Target) visible(l *login) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, exports := range []map[string]*export{t.exports, l.others.exports} {
		for n, e := range exports {
			if !e.allows(l.initiator, l.remote) {
				continue
			}
			if e.CHAP != nil && !l.discoveryOK[n] {
				continue
			}
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Serve listens on the configured addresses and serves initiators until ctx
// is done; then it stops gracefully and returns nil: no new login is taken,
// every session is told by an Async Message (RFC 7143 §11.9, event 3: the
// target drops all connections of the session, come back after Time2Wait)
// that it is going away, the commands it is running finish and are
// answered within DrainTimeout, and the connections close. Initiators with
// session recovery (open-iscsi's iscsid) log in again to the next bmid and
// retry the commands that were not answered. A listen failure (a busy
// port) is returned at once.
func (t *Target) Serve(ctx context.Context) error {
	t.mu.Lock()
	if t.serving {
		t.mu.Unlock()
		return fault.Errorf(fault.Conflict, "iscsi: already serving")
	}
	t.serving = true
	t.mu.Unlock()
	defer func() { t.mu.Lock(); t.serving = false; t.mu.Unlock() }()

	var lns []net.Listener
	for _, a := range t.cfg.Listen {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fault.Errorf(fault.Unavailable, "iscsi: listen on %s: %v", a, err)
		}
		lns = append(lns, ln)
		t.log.Info("iscsi target listening", "addr", ln.Addr().String())
	}
	var wg sync.WaitGroup
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.accept(ctx, ln)
		}()
	}
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	wg.Wait()
	// Sessions in full-feature phase drain (session.serve does it when ctx
	// ends); connections still logging in are closed now. Whatever is left
	// after the bound is closed too.
	t.mu.Lock()
	for c, s := range t.conns {
		if s == nil || !s.fullFeature.Load() {
			c.Close()
		}
	}
	t.mu.Unlock()
	drained := make(chan struct{})
	go func() { t.sessWG.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(t.cfg.DrainTimeout + time.Second):
		t.mu.Lock()
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
		<-drained
	}
	t.log.Info("iscsi target stopped")
	return nil
}

func (t *Target) accept(ctx context.Context, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				t.log.Warn("iscsi accept", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return
		}
		t.mu.Lock()
		if ctx.Err() != nil {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = nil
		t.sessWG.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.sessWG.Done()
			defer func() {
				t.mu.Lock()
				delete(t.conns, c)
				t.mu.Unlock()
				c.Close()
			}()
			if err := t.serveConn(ctx, c); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				t.log.Debug("iscsi connection ended", "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}
