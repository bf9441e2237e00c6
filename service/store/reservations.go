package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/bmi-go/bmi/service/fault"
)

// The SCSI reservation state of exported disks (iscsi.ReservationStore):
// an opaque document per target name, deleted with the target's row
// (ON DELETE CASCADE), so deprovisioning a disk releases its reservations.

// LoadReservations returns the reservation state saved for the target
// iqn, or nil if there is none.
func (s *DB) LoadReservations(ctx context.Context, iqn string) ([]byte, error) {
	var state string
	err := s.db.QueryRowContext(ctx, `SELECT state FROM scsi_reservations WHERE iqn = ?`, iqn).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, dbErr(err, fmt.Sprintf("reservations of %q", iqn))
	}
	return []byte(state), nil
}

// SaveReservations replaces the reservation state of the target iqn, which
// must be a recorded target (fault.ErrConflict otherwise). A gateway
// (Gateway.Join) saves only the state of a disk not placed on another
// gateway (fault.ErrConflict otherwise): one that was paused while
// another took its disks over must not overwrite the reservations the
// new owner now keeps.
func (s *DB) SaveReservations(ctx context.Context, iqn string, state []byte) error {
	what := fmt.Sprintf("reservations of %q", iqn)
	if s.gateway == "" {
		_, err := s.db.ExecContext(ctx, `INSERT INTO scsi_reservations (iqn, state, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (iqn) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
			iqn, string(state), s.stamp())
		return dbErr(err, what)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO scsi_reservations (iqn, state, updated_at)
		SELECT ?, ?, CAST(? AS BIGINT) WHERE NOT EXISTS (SELECT 1 FROM placements WHERE iqn = ? AND gateway <> ?)
		ON CONFLICT (iqn) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
		iqn, string(state), s.stamp(), iqn, s.gateway)
	if err != nil {
		return dbErr(err, what)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fault.Errorf(fault.Conflict, "%s: the disk is placed on another gateway (this one was taken over)", what)
	}
	return nil
}

// DeleteReservations forgets the reservation state of the target iqn; a
// missing one is not an error.
func (s *DB) DeleteReservations(ctx context.Context, iqn string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM scsi_reservations WHERE iqn = ?`, iqn)
	return dbErr(err, fmt.Sprintf("reservations of %q", iqn))
}
