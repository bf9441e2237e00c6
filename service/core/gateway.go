package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Gateway is this bmid's place among several that share one state
// database (service/store.Gateway): the locks of images and nodes are held
// in the database, so that two gateways never run conflicting operations,
// and a dead gateway's unfinished operations are taken over by a live one.
// Without one (Deps.Gateway nil) bmid is alone: locks are held in memory.
type Gateway interface {
	// ID names the gateway; its operations are journaled with it.
	ID() string
	// TTL is the lease's length.
	TTL() time.Duration
	// Lock takes every named lock or none; a held one is a conflict.
	Lock(ctx context.Context, holder string, names ...string) (func(), error)
	// Renew extends the gateway's lease; a conflict means it was lost.
	Renew(ctx context.Context) error
	// ClaimExpired takes over the gateways whose lease expired, exactly
	// once, and returns them.
	ClaimExpired(ctx context.Context) ([]string, error)
	// ReleaseTakenOver releases the locks taken over with them.
	ReleaseTakenOver(ctx context.Context) error
}

// lockTimeout bounds taking or refusing locks in the database.
const lockTimeout = 30 * time.Second

// lock takes the locks of images and nodes for an operation: in the
// database when this bmid is one gateway among several, else in memory.
func (s *Service) lock(holder string, keys ...string) (func(), error) {
	if s.gateway == nil {
		return s.locks.lock(holder, keys...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	return s.gateway.Lock(ctx, holder, keys...)
}

// TakeOver finishes the operations of the gateways whose lease has
// expired: it claims them (exactly once among all live gateways), recovers
// their unfinished operations (now journaled as this gateway's) and then
// releases the locks they held. It returns the gateways taken over. A
// bmid without a Gateway has nothing to take over.
func (s *Service) TakeOver(ctx context.Context) ([]string, error) {
	if s.gateway == nil {
		return nil, nil
	}
	// A claim may return gateways taken over along with an error (about
	// others): those are recovered all the same, since nobody else will.
	dead, err := s.gateway.ClaimExpired(ctx)
	if len(dead) == 0 {
		return nil, err
	}
	s.log.Warn("taking over the operations of dead gateways", "gateways", dead)
	rerr := s.RecoverAll(ctx)
	// Operations whose recovery failed stay failed, retried without locks
	// (RetryFailed), as in a single bmid.
	lerr := s.gateway.ReleaseTakenOver(ctx)
	// The disks the dead gateway's operations left ready are exported
	// here now (start-up left them to it).
	rep := Report{}
	s.reexport(ctx, &rep)
	for _, e := range rep.Errors {
		s.log.Error("take-over: re-export", "err", e)
	}
	return dead, errors.Join(err, rerr, lerr)
}

// ExportTargets exports the disks whose targets are named by iqns, unless
// the exporter has them: bmid's gateways run it every second for the
// disks placed on them (by an operation of another gateway, which waits
// for it, by a move, or by a take-over).
func (s *Service) ExportTargets(ctx context.Context, iqns []string) Report {
	rep := Report{}
	only := map[string]bool{}
	for _, iqn := range iqns {
		only[iqn] = true
	}
	s.reexportOnly(ctx, &rep, only)
	return rep
}

// busyElsewhere reports whether opID is an unfinished operation of another
// gateway: the disk it works on is that gateway's to export or not.
func (s *Service) busyElsewhere(ctx context.Context, opID string) bool {
	if s.gateway == nil || opID == "" {
		return false
	}
	op, err := s.journal.Op(ctx, opID)
	if err != nil {
		return false
	}
	return op.Gateway != s.gateway.ID() && (op.State == OpRunning || op.State == OpFailed)
}

// KeepGateway renews this gateway's lease and takes over dead gateways,
// every TTL/3, until ctx ends (nil) or the lease is lost: then it returns
// the error, and the gateway must stop serving, because another has taken
// over its operations. A take-over (recovery, exports) runs beside the
// renewals, one at a time, so that a long one never costs this gateway its
// own lease. A bmid without a Gateway returns at once.
func (s *Service) KeepGateway(ctx context.Context) error {
	if s.gateway == nil {
		return nil
	}
	tick := time.NewTicker(max(s.gateway.TTL()/3, 10*time.Millisecond))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var busy atomic.Bool
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := s.gateway.Renew(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("gateway %s: %w", s.gateway.ID(), err)
		}
		if !busy.CompareAndSwap(false, true) {
			continue // the last take-over still runs
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer busy.Store(false)
			if _, err := s.TakeOver(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("take-over of a dead gateway", "err", err)
			}
		}()
	}
}
