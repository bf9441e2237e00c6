//go:build ceph_preview

package ceph

import (
	"sync"
	"syscall"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// probeInterval is how long the store waits between two probes of a
// cluster that did not answer (each probe itself waits up to the op
// timeout for the cluster).
const probeInterval = time.Second

// outage is what a Store knows of a cluster that stopped answering: once
// a call has waited the whole op timeout in vain, the next management
// calls fail at once instead of each waiting the op timeout again (a
// provision's rollback, the retries, every API call that reads Ceph), and
// one goroutine probes the cluster until it answers. Open images are not
// gated: a node's I/O keeps waiting for the cluster up to the op timeout,
// since an OSD that comes back within it loses the node nothing.
type outage struct {
	mu      sync.Mutex
	since   time.Time // zero: the cluster answers
	first   string    // the call that timed out first
	probing bool
	onBack  func()
}

// SetAnsweringHook makes f run, in a goroutine of its own, each time the
// cluster answers again after an outage (bmid retries the operations the
// outage failed). Call it before the Store is shared; nil: none.
func (s *Store) SetAnsweringHook(f func()) {
	s.out.mu.Lock()
	s.out.onBack = f
	s.out.mu.Unlock()
}

// Unreachable reports whether the store counts the cluster as not
// answering, and since when.
func (s *Store) Unreachable() (bool, time.Time) {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	return !s.out.since.IsZero(), s.out.since
}

// gate refuses a management call while the cluster is not answering.
func (s *Store) gate() error {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	if s.out.since.IsZero() {
		return nil
	}
	return fault.Errorf(fault.Unavailable, "ceph is unreachable: %s got no answer within the op timeout at %s, and the cluster has not answered since (probed every %v)",
		s.out.first, s.out.since.UTC().Format(time.RFC3339), probeInterval)
}

// noteTimeout records that action waited the op timeout in vain, and
// starts the probe when none runs.
func (s *Store) noteTimeout(action string) {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	if s.out.since.IsZero() {
		s.out.since, s.out.first = time.Now(), action
		s.log.Warn("ceph is not answering: calls fail at once until it answers a probe", "call", action)
	}
	if !s.out.probing {
		s.out.probing = true
		go s.probe()
	}
}

// probe asks the cluster for one object's stat until it answers (found,
// not found or not permitted: a monitor and an OSD answered), then lifts
// the gate.
// It ends without lifting it when the store is closed.
func (s *Store) probe() {
	for {
		answered, closed := s.ping()
		if closed {
			s.out.mu.Lock()
			s.out.probing = false
			s.out.mu.Unlock()
			return
		}
		if answered {
			s.out.mu.Lock()
			since, hook := s.out.since, s.out.onBack
			s.out.since, s.out.first, s.out.probing = time.Time{}, "", false
			s.out.mu.Unlock()
			s.log.Info("ceph answers again", "unreachable_for", time.Since(since).Round(time.Millisecond))
			if hook != nil {
				go hook()
			}
			return
		}
		time.Sleep(probeInterval)
	}
}

// ping is one probe; it holds the store's read lock so that Close waits
// for it (librados must not be shut down under a call).
func (s *Store) ping() (answered, closed bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false, true
	}
	_, err := s.ioctx.Stat("rbd_directory")
	if err == nil {
		return true, false
	}
	switch errnoOf(err) {
	case 0, syscall.ETIMEDOUT, syscall.ENOTCONN, syscall.ESHUTDOWN, syscall.ECONNREFUSED, syscall.EAGAIN:
		return false, false
	}
	// Not found, or refused by the client's capabilities: the cluster
	// answered.
	return true, false
}
