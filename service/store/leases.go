package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// PutLease records (or renews) a DHCP lease.
func (s *DB) PutLease(ctx context.Context, l core.Lease) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO leases (mac, ip, hostname, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (mac) DO UPDATE SET ip = excluded.ip, hostname = excluded.hostname, expires_at = excluded.expires_at`,
		l.MAC, l.IP, l.Hostname, l.Expires.UnixNano())
	return dbErr(err, fmt.Sprintf("lease of %s for %s", l.IP, l.MAC))
}

// LeaseByMAC returns the lease of a MAC.
func (s *DB) LeaseByMAC(ctx context.Context, mac string) (core.Lease, error) {
	var l core.Lease
	var exp int64
	err := s.db.QueryRowContext(ctx, `SELECT mac, ip, hostname, expires_at FROM leases WHERE mac = ?`, mac).Scan(&l.MAC, &l.IP, &l.Hostname, &exp)
	if err != nil {
		return core.Lease{}, dbErr(err, fmt.Sprintf("%s has not been assigned an IP yet", mac))
	}
	l.Expires = fromStamp(exp)
	return l, nil
}

// Leases lists every lease by IP.
func (s *DB) Leases(ctx context.Context) ([]core.Lease, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT mac, ip, hostname, expires_at FROM leases ORDER BY ip`)
	if err != nil {
		return nil, dbErr(err, "leases")
	}
	defer rows.Close()
	var out []core.Lease
	for rows.Next() {
		var l core.Lease
		var exp int64
		if err := rows.Scan(&l.MAC, &l.IP, &l.Hostname, &exp); err != nil {
			return nil, err
		}
		l.Expires = fromStamp(exp)
		out = append(out, l)
	}
	return out, rows.Err()
}

// DeleteLease releases a MAC's lease; a missing one is not an error.
func (s *DB) DeleteLease(ctx context.Context, mac string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM leases WHERE mac = ?`, mac)
	return dbErr(err, fmt.Sprintf("lease of %s", mac))
}

// ClaimLease stores l (replacing the lease of l.MAC) unless another MAC
// holds l.IP with a lease still active at now: that is a conflict and
// nothing changes. Another MAC's expired lease on l.IP is dropped.
func (s *DB) ClaimLease(ctx context.Context, l core.Lease, now time.Time) error {
	what := fmt.Sprintf("lease of %s for %s", l.IP, l.MAC)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(err, what)
	}
	defer tx.Rollback()
	var other string
	var exp int64
	err = tx.QueryRowContext(ctx, `SELECT mac, expires_at FROM leases WHERE ip = ? AND mac <> ?`, l.IP, l.MAC).Scan(&other, &exp)
	switch {
	case err == nil && exp > now.UnixNano():
		return fault.Errorf(fault.Conflict, "%s: %s is leased to %s", what, l.IP, other)
	case err == nil:
		if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE mac = ?`, other); err != nil {
			return dbErr(err, what)
		}
	case !errors.Is(err, sql.ErrNoRows):
		return dbErr(err, what)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO leases (mac, ip, hostname, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (mac) DO UPDATE SET ip = excluded.ip, hostname = excluded.hostname, expires_at = excluded.expires_at`,
		l.MAC, l.IP, l.Hostname, l.Expires.UnixNano()); err != nil {
		err = dbErr(err, what)
		if errors.Is(err, fault.ErrExists) {
			// The MAC's row is an upsert, so the unique index that refused
			// this is the address's: another transaction leased it between
			// the check above and this insert (PostgreSQL's read committed
			// lets both see it free). The address is taken, as above.
			return fault.Errorf(fault.Conflict, "%s: %s was leased to another MAC meanwhile", what, l.IP)
		}
		return err
	}
	return dbErr(tx.Commit(), what)
}
