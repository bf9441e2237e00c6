//go:build ceph_preview

package ceph

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ceph/go-ceph/rados"
	"github.com/ceph/go-ceph/rbd"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// Config says how to reach the pool; it mirrors service/config.Ceph.
type Config struct {
	// Conf is the ceph.conf of the cluster.
	Conf string
	// ID is the cephx client id without "client." (default "admin").
	ID string
	// Keyring overrides the keyring ceph.conf names.
	Keyring string
	// Pool is the RBD pool.
	Pool string
	// OpTimeout bounds every mon and OSD call and the initial connect
	// (rados_osd_op_timeout, rados_mon_op_timeout, client_mount_timeout);
	// it must be positive: Ceph's default is to wait forever.
	OpTimeout time.Duration
}

// features of every image BMI creates: object-map makes removal and diff of
// sparse images fast (removing a sparse 100 GiB image: 0.1 s instead of 6.5 s).
const features = rbd.FeatureLayering | rbd.FeatureExclusiveLock | rbd.FeatureObjectMap |
	rbd.FeatureFastDiff | rbd.FeatureDeepFlatten

// objectOrder: 4 MiB objects.
const objectOrder = 22

// Store is the RBD image store of one pool over one rados connection, safe
// for concurrent use. librbd calls cannot be interrupted: a context is
// checked before each call (and during flatten and import), and OpTimeout
// bounds what a call can wait for the cluster.
type Store struct {
	log  *slog.Logger
	pool string

	mu     sync.RWMutex // held for reading by every call; Close takes it for writing
	closed bool
	conn   *rados.Conn
	ioctx  *rados.IOContext

	imagesMu sync.Mutex
	images   map[*Image]struct{} // open images, closed by Close

	errs ErrorObserver // hears failed calls (metrics); nil: none
	out  outage        // a cluster that stopped answering: management calls fail at once

	fenceMu sync.Mutex
	fenced  map[string]bool // client addresses this process blocklisted (Image.FenceStaleOwner)

	// asynchronous reads in flight on all images (Image.ReadAsync)
	asyncOps, asyncBytes atomic.Int64
}

// Dial connects to the cluster and opens the pool. Call it once per process
// and share the Store.
func Dial(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = logging.Discard()
	}
	if cfg.Conf == "" || cfg.Pool == "" {
		return nil, fault.Errorf(fault.Invalid, "ceph: conf and pool are required (conf %q, pool %q)", cfg.Conf, cfg.Pool)
	}
	if cfg.OpTimeout <= 0 {
		return nil, fault.Errorf(fault.Invalid, "ceph: op timeout must be positive (got %v): without it an outage blocks forever", cfg.OpTimeout)
	}
	if cfg.ID == "" {
		cfg.ID = "admin"
	}
	if err := ctx.Err(); err != nil {
		return nil, mapError(err, "connect to ceph")
	}
	what := fmt.Sprintf("connect to ceph (%s, client.%s)", cfg.Conf, cfg.ID)
	conn, err := rados.NewConnWithUser(cfg.ID)
	if err != nil {
		return nil, mapError(err, what)
	}
	if err := conn.ReadConfigFile(cfg.Conf); err != nil {
		conn.Shutdown()
		return nil, fault.Errorf(fault.Invalid, "ceph: read %s: %v", cfg.Conf, err)
	}
	secs := strconv.Itoa(max(1, int(cfg.OpTimeout.Round(time.Second)/time.Second)))
	opts := map[string]string{"rados_osd_op_timeout": secs, "rados_mon_op_timeout": secs, "client_mount_timeout": secs,
		// librbd dispatches a request in the caller's thread instead of
		// handing it to its io_context thread first: one thread wakeup
		// less per I/O (4 KiB random reads through the iSCSI target: 7-10 %
		// more IOPS, 10-15 % less CPU). What could then block the caller,
		// the Objecter's in-flight budget, Image.ReadAsync keeps clear of
		// (asyncMaxOps, asyncMaxBytes).
		"rbd_non_blocking_aio": "false",
		// Image.FenceStaleOwner blocklists a dead lock owner itself, once
		// for all its images, before it breaks their locks; librbd would
		// blocklist it again for every image and wait for a new OSD map
		// each time (8 disks of a killed bmid: 11 s instead of 2).
		"rbd_blocklist_on_break_lock": "false",
	}
	if cfg.Keyring != "" {
		opts["keyring"] = cfg.Keyring
	}
	for k, v := range opts {
		if err := conn.SetConfigOption(k, v); err != nil {
			conn.Shutdown()
			return nil, mapError(err, fmt.Sprintf("%s: set %s", what, k))
		}
	}
	t0 := time.Now()
	if err := conn.Connect(); err != nil {
		conn.Shutdown()
		if errnoOf(err) == syscall.ENOENT {
			return nil, fault.Errorf(fault.Invalid, "ceph: %s: no keyring found for client.%s (keyring %q, or what %s names): %v", what, cfg.ID, cfg.Keyring, cfg.Conf, err)
		}
		return nil, mapError(err, what)
	}
	ioctx, err := conn.OpenIOContext(cfg.Pool)
	if err != nil {
		conn.Shutdown()
		return nil, mapError(err, fmt.Sprintf("open pool %q", cfg.Pool), hint{syscall.ENOENT, "pool not found"})
	}
	log.Info("connected to ceph", "conf", cfg.Conf, "client", cfg.ID, "pool", cfg.Pool,
		"op_timeout", cfg.OpTimeout, "elapsed", time.Since(t0).Round(time.Millisecond))
	return &Store{log: log, pool: cfg.Pool, conn: conn, ioctx: ioctx, images: map[*Image]struct{}{}}, nil
}

// Pool is the store's pool.
func (s *Store) Pool() string {
	if s == nil {
		return ""
	}
	return s.pool
}

// Close closes every image still open, then the pool and the connection.
// It waits for calls in progress. Closing twice, or a nil Store, is a no-op.
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.imagesMu.Lock()
	for img := range s.images {
		if err := img.close(); err != nil {
			s.log.Warn("close rbd image at store close", "image", img.name, "err", err)
		}
		delete(s.images, img)
	}
	s.imagesMu.Unlock()
	s.ioctx.Destroy()
	s.conn.Shutdown()
	return nil
}

// begin starts a management call: it checks ctx, that the store is open
// and that the cluster is not known to be unreachable (outage), and holds
// the read lock until the returned function is called.
func (s *Store) begin(ctx context.Context) (func(), error) {
	if s == nil {
		return nil, errClosed
	}
	if err := s.gate(); err != nil {
		return nil, err
	}
	return s.beginIO(ctx)
}

// beginIO is begin without the outage gate, for opening an image for a
// node's I/O: that waits for the cluster up to the op timeout.
func (s *Store) beginIO(ctx context.Context) (func(), error) {
	if s == nil {
		return nil, errClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, errClosed
	}
	return s.mu.RUnlock, nil
}

// newOptions returns the image options of every image BMI creates.
func newOptions() (*rbd.ImageOptions, error) {
	o := rbd.NewRbdImageOptions()
	if err := o.SetUint64(rbd.ImageOptionFeatures, features); err != nil {
		o.Destroy()
		return nil, err
	}
	if err := o.SetUint64(rbd.ImageOptionOrder, objectOrder); err != nil {
		o.Destroy()
		return nil, err
	}
	return o, nil
}
