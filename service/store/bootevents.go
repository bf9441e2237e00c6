package store

import (
	"context"
	"net"

	"github.com/bmi-go/bmi/service/boot"
)

// Boot timelines (boot.Event): what the boot services of every gateway saw
// of each node's boots, kept per MAC and deleted with the node's boot
// config (ON DELETE CASCADE), so a node's next project never reads the
// timeline of its last one.

// MaxBootEvents is how many events AppendBootEvents keeps per node: the
// newest.
const MaxBootEvents = 64

// AppendBootEvents stores evs in one transaction, each under its MAC, and
// drops the oldest events of each node beyond MaxBootEvents. An event of a
// MAC without a boot config is not stored (an unknown machine on the
// provisioning network cannot fill the database); it returns how many
// were.
func (s *DB) AppendBootEvents(ctx context.Context, evs []boot.Event) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, dbErr(err, "boot timeline")
	}
	defer tx.Rollback()
	stored, macs := 0, map[string]bool{}
	for _, ev := range evs {
		mac := ev.MAC.String()
		res, err := tx.ExecContext(ctx, `INSERT INTO boot_events (mac, at, step, client, detail, remote, initiator, session, gateway)
			SELECT ?, CAST(? AS BIGINT), ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM boot_configs WHERE mac = ?)`,
			mac, ev.At.UnixNano(), string(ev.Step), clip(ev.Client), clip(boot.Redact(ev.Detail)), clip(ev.Remote),
			clip(ev.Initiator), clip(ev.Session), s.gateway, mac)
		if err != nil {
			return 0, dbErr(err, "boot timeline of "+mac)
		}
		if n, err := res.RowsAffected(); err == nil && n > 0 {
			stored++
			macs[mac] = true
		}
	}
	for mac := range macs {
		if _, err := tx.ExecContext(ctx, `DELETE FROM boot_events WHERE mac = ? AND id NOT IN (
			SELECT id FROM boot_events WHERE mac = ? ORDER BY at DESC, id DESC LIMIT ?)`, mac, mac, MaxBootEvents); err != nil {
			return 0, dbErr(err, "boot timeline of "+mac)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, dbErr(err, "boot timeline")
	}
	return stored, nil
}

// BootEvents returns the stored events of the node with this MAC, oldest
// first.
func (s *DB) BootEvents(ctx context.Context, mac net.HardwareAddr) ([]boot.Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT at, step, client, detail, remote, initiator, session FROM boot_events
		WHERE mac = ? ORDER BY at, id`, mac.String())
	if err != nil {
		return nil, dbErr(err, "boot timeline of "+mac.String())
	}
	defer rows.Close()
	var out []boot.Event
	for rows.Next() {
		ev := boot.Event{MAC: mac}
		var at int64
		var step string
		if err := rows.Scan(&at, &step, &ev.Client, &ev.Detail, &ev.Remote, &ev.Initiator, &ev.Session); err != nil {
			return nil, dbErr(err, "boot timeline of "+mac.String())
		}
		ev.At, ev.Step = fromStamp(at), boot.Step(step)
		out = append(out, ev)
	}
	return out, dbErr(rows.Err(), "boot timeline of "+mac.String())
}
