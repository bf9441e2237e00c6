package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// DefaultLease is how long a gateway's lease lasts when Gateway.TTL is 0.
const DefaultLease = 30 * time.Second

// takeover is the token of a lock a live gateway took over from a dead one.
const takeover = "takeover"

// Gateway is one bmid among several that share a database: its lease
// (a row in gateways, renewed while it lives), the locks of images and
// nodes its operations take (rows in locks, so that two gateways never run
// conflicting operations), and the take-over of a dead gateway's
// operations. Make it with NewGateway and Join it before use.
type Gateway struct {
	db  *DB
	id  string
	ttl time.Duration
	// Now is the clock leases are read and written with; nil: time.Now.
	// All gateways must agree on the time to within a small part of the
	// lease.
	Now func() time.Time
	// Group is the gateway's group (set before Join): disks are placed on
	// the live gateways of one group, and a gateway takes over only dead
	// gateways of its own group.
	Group string
	// Portal is the group's floating portal address (host:port), which
	// every gateway of a group must agree on.
	Portal string
	// CephClient is the address of the gateway's Ceph client, which a
	// gateway that takes this one over blocklists before it opens its
	// disks' images.
	CephClient string
	// Addresses are the gateway's own portal addresses (host:port), one
	// per network its nodes log in from, where logins for the disks
	// placed on it are redirected.
	Addresses []string
}

// DeadGateway is a gateway another took over: its id, and its Ceph
// client's address to fence.
type DeadGateway struct {
	ID         string
	CephClient string
}

// NewGateway returns the gateway id on db with leases of ttl (0:
// DefaultLease).
func NewGateway(db *DB, id string, ttl time.Duration) (*Gateway, error) {
	if id == "" || len(id) > 64 || strings.ContainsAny(id, " \t\n") {
		return nil, fault.Errorf(fault.Invalid, "gateway id %q: 1 to 64 characters without spaces", id)
	}
	if ttl <= 0 {
		ttl = DefaultLease
	}
	return &Gateway{db: db, id: id, ttl: ttl}, nil
}

// ID is the gateway's name.
func (g *Gateway) ID() string { return g.id }

// TTL is the lease's length (renew well within it).
func (g *Gateway) TTL() time.Duration { return g.ttl }

func (g *Gateway) now() int64 {
	if g.Now != nil {
		return g.Now().UnixNano()
	}
	return time.Now().UnixNano()
}

// Join starts (or, after a restart under the same id, resumes) the
// gateway's lease, and makes db's journal write only this gateway's
// operations (DB.MarkStep). On PostgreSQL it also takes an advisory lock
// on the id for as long as db is open, so that two live processes never
// share one id (the second is refused with a conflict), and holds the
// instance lock (DB.LockInstance) shared, so that no lone bmid runs beside
// gateways. One gateway joins per DB.
func (g *Gateway) Join(ctx context.Context) error {
	if g.db.db.dialect.numbered {
		h := fnv.New64a()
		h.Write([]byte("bmi gateway " + g.id))
		if err := g.db.advisoryLock(ctx, instanceLockID, "a bmid that is not a gateway uses this PostgreSQL database", true); err != nil {
			return err
		}
		if err := g.db.advisoryLock(ctx, int64(h.Sum64()), fmt.Sprintf("gateway %q is already running", g.id), false); err != nil {
			return err
		}
	}
	now := g.now()
	if g.Portal != "" {
		var other, portal string
		err := g.db.db.QueryRowContext(ctx, `SELECT id, portal FROM gateways
			WHERE gateway_group = ? AND id <> ? AND expires_at >= ? AND portal <> '' AND portal <> ? ORDER BY id`,
			g.Group, g.id, now, g.Portal).Scan(&other, &portal)
		if err == nil {
			return fault.Errorf(fault.Invalid, "gateway %q: group %q's portal is %s (gateway %s), not %s: every gateway of a group names the same floating portal address (iscsi.portal)",
				g.id, g.Group, portal, other, g.Portal)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return dbErr(err, "gateways")
		}
	}
	g.db.gateway = g.id
	_, err := g.db.db.ExecContext(ctx, `INSERT INTO gateways (id, started_at, expires_at, gateway_group, portal, ceph_client, addresses) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, expires_at = excluded.expires_at,
		gateway_group = excluded.gateway_group, portal = excluded.portal, ceph_client = excluded.ceph_client, addresses = excluded.addresses`,
		g.id, now, now+int64(g.ttl), g.Group, g.Portal, g.CephClient, strings.Join(g.Addresses, " "))
	return dbErr(err, fmt.Sprintf("gateway %q", g.id))
}

// Renew extends the lease. A lease that another gateway has taken over
// (because this one did not renew in time) is not renewed: the error is a
// conflict, and this gateway must stop acting, since its operations are
// now another's.
func (g *Gateway) Renew(ctx context.Context) error {
	res, err := g.db.db.ExecContext(ctx, `UPDATE gateways SET expires_at = ? WHERE id = ?`, g.now()+int64(g.ttl), g.id)
	if err := rowsAffected(res, err, fmt.Sprintf("gateway %q", g.id)); err != nil {
		if fault.Of(err) == fault.NotFound {
			return fault.Errorf(fault.Conflict, "gateway %q lost its lease: another gateway took over its operations", g.id)
		}
		return err
	}
	return nil
}

// Leave ends the lease at once (a clean stop): whatever the gateway left
// unfinished is taken over by the next live gateway that looks.
func (g *Gateway) Leave(ctx context.Context) error {
	_, err := g.db.db.ExecContext(ctx, `UPDATE gateways SET expires_at = 0 WHERE id = ?`, g.id)
	return dbErr(err, fmt.Sprintf("gateway %q", g.id))
}

// Lock takes every named lock or none, for holder (what the operation is);
// a lock that another operation holds, on any gateway, is a conflict at
// once that names it. The returned func releases them.
func (g *Gateway) Lock(ctx context.Context, holder string, names ...string) (func(), error) {
	names = slices.Clone(names)
	slices.Sort(names) // one order everywhere: no deadlock between two takers
	token := newToken()
	tx, err := g.db.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, dbErr(err, "locks")
	}
	defer tx.Rollback()
	now := g.now()
	for _, n := range names {
		res, err := tx.ExecContext(ctx, `INSERT INTO locks (name, holder, gateway, token, taken_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (name) DO NOTHING`, n, holder, g.id, token, now)
		if err != nil {
			return nil, dbErr(err, n)
		}
		if k, err := res.RowsAffected(); err != nil || k == 0 {
			var other, gw string
			if err := tx.QueryRowContext(ctx, `SELECT holder, gateway FROM locks WHERE name = ?`, n).Scan(&other, &gw); err != nil {
				other, gw = "another operation", "?"
			}
			return nil, fault.Errorf(fault.Conflict, "%s is busy: %s in progress (gateway %s)", n, other, gw)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, dbErr(err, "locks")
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, n := range names {
			if _, err := g.db.db.ExecContext(ctx, `DELETE FROM locks WHERE name = ? AND token = ?`, n, token); err != nil {
				g.db.log.Error("cannot release a lock; it goes when this gateway's lease is taken over", "lock", n, "err", err)
			}
		}
	}, nil
}

func newToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ClaimExpired takes over every gateway of this one's group whose lease
// has expired (ClaimExpiredGateways) and returns their ids.
func (g *Gateway) ClaimExpired(ctx context.Context) ([]string, error) {
	dead, err := g.ClaimExpiredGateways(ctx)
	ids := make([]string, 0, len(dead))
	for _, d := range dead {
		ids = append(ids, d.ID)
	}
	return ids, err
}

// ClaimExpiredGateways takes over every gateway of this one's group whose
// lease has expired: in one transaction per dead gateway it deletes the
// gateway's row (which only one claimer can do, so a dead gateway is
// taken over exactly once), marks the dead gateway's unfinished operations
// and its disks' placements as this gateway's, and keeps its locks, as
// this gateway's, until ReleaseTakenOver. It returns the gateways taken
// over; the caller then fences their Ceph clients, recovers the operations
// (their gateway is now this one), calls ReleaseTakenOver and exports the
// disks.
func (g *Gateway) ClaimExpiredGateways(ctx context.Context) ([]DeadGateway, error) {
	now := g.now()
	rows, err := g.db.db.QueryContext(ctx, `SELECT id, ceph_client FROM gateways WHERE expires_at < ? AND id <> ? AND gateway_group = ? ORDER BY id`,
		now, g.id, g.Group)
	if err != nil {
		return nil, dbErr(err, "gateways")
	}
	var dead []DeadGateway
	for rows.Next() {
		var d DeadGateway
		if err := rows.Scan(&d.ID, &d.CephClient); err != nil {
			rows.Close()
			return nil, dbErr(err, "gateways")
		}
		dead = append(dead, d)
	}
	rows.Close()
	var claimed []DeadGateway
	for _, d := range dead {
		ok, err := g.claim(ctx, d.ID, now)
		if err != nil {
			return claimed, err
		}
		if ok {
			claimed = append(claimed, d)
		}
	}
	return claimed, nil
}

func (g *Gateway) claim(ctx context.Context, dead string, now int64) (bool, error) {
	what := fmt.Sprintf("take-over of gateway %q", dead)
	tx, err := g.db.db.BeginTx(ctx, nil)
	if err != nil {
		return false, dbErr(err, what)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM gateways WHERE id = ? AND expires_at < ?`, dead, now)
	if err != nil {
		return false, dbErr(err, what)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, dbErr(err, what) // renewed meanwhile, or another claimer was first
	}
	if _, err := tx.ExecContext(ctx, `UPDATE operations SET gateway = ? WHERE gateway = ? AND state IN ('running', 'failed')`, g.id, dead); err != nil {
		return false, dbErr(err, what)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE locks SET gateway = ?, token = ? WHERE gateway = ?`, g.id, takeover, dead); err != nil {
		return false, dbErr(err, what)
	}
	// Its disks are this gateway's to export now; a move the dead one had
	// not finished ends here.
	if _, err := tx.ExecContext(ctx, `UPDATE placements SET gateway = ?, exported_at = 0, move_to = '' WHERE gateway = ?`, g.id, dead); err != nil {
		return false, dbErr(err, what)
	}
	if err := tx.Commit(); err != nil {
		return false, dbErr(err, what)
	}
	g.db.log.Warn("took over a dead gateway", "gateway", g.id, "dead", dead)
	return true, nil
}

// ReleaseTakenOver releases the locks taken over from dead gateways, once
// their operations are recovered.
func (g *Gateway) ReleaseTakenOver(ctx context.Context) error {
	_, err := g.db.db.ExecContext(ctx, `DELETE FROM locks WHERE gateway = ? AND token = ?`, g.id, takeover)
	return dbErr(err, "locks taken over")
}
