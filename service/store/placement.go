package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/bmi-go/bmi/service/fault"
)

// What a placement asks of its gateway (Placement.Want).
const (
	// WantExport: the gateway exports the disk.
	WantExport = "export"
	// WantUnexport: an operation on another gateway asked the owner to
	// stop exporting the disk; the owner unexports it and deletes the row.
	WantUnexport = "unexport"
)

// Placement is the gateway a disk's target is exported by.
type Placement struct {
	IQN     string
	Group   string
	Gateway string
	Want    string
	// MoveTo is the gateway the disk is being moved to: the owner
	// unexports it and hands the placement over.
	MoveTo string
	// ExportedAt is when the owner last exported it (UnixNano; 0: not
	// since it was placed on it).
	ExportedAt int64
}

const placementCols = `iqn, gateway_group, gateway, want, move_to, exported_at`

func scanPlacement(r interface{ Scan(...any) error }) (Placement, error) {
	var p Placement
	err := r.Scan(&p.IQN, &p.Group, &p.Gateway, &p.Want, &p.MoveTo, &p.ExportedAt)
	return p, err
}

// Placement returns where iqn is placed; not found if nowhere.
func (g *Gateway) Placement(ctx context.Context, iqn string) (Placement, error) {
	p, err := scanPlacement(g.db.db.QueryRowContext(ctx, `SELECT `+placementCols+` FROM placements WHERE iqn = ?`, iqn))
	return p, dbErr(err, fmt.Sprintf("placement of %s", iqn))
}

// Location is where a disk is served: its placement, and the address and
// lease of the gateway it is placed on.
type Location struct {
	Placement
	// Addresses are the owner's own portal addresses (none if it recorded
	// none).
	Addresses []string
	// Live says the owner's lease has not expired (it may still be dead:
	// a lease outlives its gateway by up to its length).
	Live bool
}

const locationQuery = `SELECT p.iqn, p.gateway_group, p.gateway, p.want, p.move_to, p.exported_at, gw.addresses, gw.expires_at
	FROM placements p LEFT JOIN gateways gw ON gw.id = p.gateway`

func (g *Gateway) scanLocation(r interface{ Scan(...any) error }) (Location, error) {
	var l Location
	var expires sql.NullInt64
	var addr sql.NullString
	if err := r.Scan(&l.IQN, &l.Group, &l.Gateway, &l.Want, &l.MoveTo, &l.ExportedAt, &addr, &expires); err != nil {
		return Location{}, err
	}
	l.Addresses = strings.Fields(addr.String)
	l.Live = expires.Valid && expires.Int64 >= g.now()
	return l, nil
}

// Locate returns where iqn is served; not found if it is placed nowhere.
func (g *Gateway) Locate(ctx context.Context, iqn string) (Location, error) {
	l, err := g.scanLocation(g.db.db.QueryRowContext(ctx, locationQuery+` WHERE p.iqn = ?`, iqn))
	return l, dbErr(err, fmt.Sprintf("placement of %s", iqn))
}

// Locations returns where every placed disk of this gateway's group is
// served, by IQN.
func (g *Gateway) Locations(ctx context.Context) ([]Location, error) {
	rows, err := g.db.db.QueryContext(ctx, locationQuery+` WHERE p.gateway_group = ? ORDER BY p.iqn`, g.Group)
	if err != nil {
		return nil, dbErr(err, "placements")
	}
	defer rows.Close()
	var out []Location
	for rows.Next() {
		l, err := g.scanLocation(rows)
		if err != nil {
			return nil, dbErr(err, "placements")
		}
		out = append(out, l)
	}
	return out, dbErr(rows.Err(), "placements")
}

// Placements returns every placement of the database, by IQN.
func (g *Gateway) Placements(ctx context.Context) ([]Placement, error) {
	rows, err := g.db.db.QueryContext(ctx, `SELECT `+placementCols+` FROM placements ORDER BY iqn`)
	if err != nil {
		return nil, dbErr(err, "placements")
	}
	defer rows.Close()
	var out []Placement
	for rows.Next() {
		p, err := scanPlacement(rows)
		if err != nil {
			return nil, dbErr(err, "placements")
		}
		out = append(out, p)
	}
	return out, dbErr(rows.Err(), "placements")
}

// Place returns where iqn is placed, placing it first if it is nowhere:
// on the live gateway of this gateway's group with the fewest disks (this
// one when it is among them, else the first by id). Of two gateways that
// place one disk at once, one wins and both return its placement.
func (g *Gateway) Place(ctx context.Context, iqn string) (Placement, error) {
	if p, err := g.Placement(ctx, iqn); fault.Of(err) != fault.NotFound {
		return p, err
	}
	now := g.now()
	rows, err := g.db.db.QueryContext(ctx, `SELECT g.id, (SELECT COUNT(*) FROM placements p WHERE p.gateway = g.id) AS n
		FROM gateways g WHERE g.gateway_group = ? AND g.expires_at >= ? ORDER BY n, g.id`, g.Group, now)
	if err != nil {
		return Placement{}, dbErr(err, "gateways")
	}
	best, least := "", int64(-1)
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return Placement{}, dbErr(err, "gateways")
		}
		if least < 0 {
			best, least = id, n
		}
		if id == g.id && n == least {
			best = id
		}
	}
	rows.Close()
	if best == "" {
		// This gateway's own lease lapsed: it must not place disks.
		return Placement{}, fault.Errorf(fault.Unavailable, "place %s: no live gateway in group %q", iqn, g.Group)
	}
	if _, err := g.db.db.ExecContext(ctx, `INSERT INTO placements (`+placementCols+`, placed_at) VALUES (?, ?, ?, ?, '', 0, ?)
		ON CONFLICT (iqn) DO NOTHING`, iqn, g.Group, best, WantExport, now); err != nil {
		return Placement{}, dbErr(err, fmt.Sprintf("placement of %s", iqn))
	}
	return g.Placement(ctx, iqn)
}

// MarkExported records that this gateway exported iqn; false if iqn is
// no longer placed on it to export.
func (g *Gateway) MarkExported(ctx context.Context, iqn string) (bool, error) {
	res, err := g.db.db.ExecContext(ctx, `UPDATE placements SET exported_at = ? WHERE iqn = ? AND gateway = ? AND want = ?`,
		g.now(), iqn, g.id, WantExport)
	if err != nil {
		return false, dbErr(err, fmt.Sprintf("placement of %s", iqn))
	}
	n, err := res.RowsAffected()
	return n > 0, dbErr(err, fmt.Sprintf("placement of %s", iqn))
}

// RequestACL asks iqn's owner, another gateway, to apply the disk's
// initiator ACL again (a node was given the disk here) and mark it
// exported once it has (MarkExported); nothing if this gateway owns it.
func (g *Gateway) RequestACL(ctx context.Context, iqn string) (bool, error) {
	res, err := g.db.db.ExecContext(ctx, `UPDATE placements SET exported_at = 0 WHERE iqn = ? AND gateway <> ? AND want = ?`,
		iqn, g.id, WantExport)
	if err != nil {
		return false, dbErr(err, fmt.Sprintf("placement of %s", iqn))
	}
	n, err := res.RowsAffected()
	return n > 0, dbErr(err, fmt.Sprintf("placement of %s", iqn))
}

// RequestUnexport asks iqn's owner to stop exporting it; a disk placed
// nowhere is fine.
func (g *Gateway) RequestUnexport(ctx context.Context, iqn string) error {
	_, err := g.db.db.ExecContext(ctx, `UPDATE placements SET want = ? WHERE iqn = ?`, WantUnexport, iqn)
	return dbErr(err, fmt.Sprintf("placement of %s", iqn))
}

// Unplace deletes iqn's placement on this gateway (once it no longer
// exports it); a placement on another gateway stays.
func (g *Gateway) Unplace(ctx context.Context, iqn string) error {
	_, err := g.db.db.ExecContext(ctx, `DELETE FROM placements WHERE iqn = ? AND gateway = ?`, iqn, g.id)
	return dbErr(err, fmt.Sprintf("placement of %s", iqn))
}

// Move asks iqn's owner to move it to gateway to, a live gateway of the
// same group: the owner unexports it and hands the placement over
// (HandOver), and to exports it.
func (g *Gateway) Move(ctx context.Context, iqn, to string) error {
	p, err := g.Placement(ctx, iqn)
	if err != nil {
		return err
	}
	if p.Gateway == to {
		return nil
	}
	var grp string
	err = g.db.db.QueryRowContext(ctx, `SELECT gateway_group FROM gateways WHERE id = ? AND expires_at >= ?`, to, g.now()).Scan(&grp)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fault.Errorf(fault.Invalid, "move %s to gateway %q: no such live gateway", iqn, to)
	case err != nil:
		return dbErr(err, "gateways")
	case grp != p.Group:
		return fault.Errorf(fault.Invalid, "move %s to gateway %q: it is in group %q, the disk in %q (another provisioning network)", iqn, to, grp, p.Group)
	}
	res, err := g.db.db.ExecContext(ctx, `UPDATE placements SET move_to = ? WHERE iqn = ? AND want = ?`, to, iqn, WantExport)
	return rowsAffected(res, err, fmt.Sprintf("exported disk %s", iqn))
}

// HandOver gives iqn, which this gateway no longer exports, to the
// gateway it is being moved to.
func (g *Gateway) HandOver(ctx context.Context, iqn string) error {
	_, err := g.db.db.ExecContext(ctx, `UPDATE placements SET gateway = move_to, move_to = '', exported_at = 0
		WHERE iqn = ? AND gateway = ? AND move_to <> ''`, iqn, g.id)
	return dbErr(err, fmt.Sprintf("placement of %s", iqn))
}
