package store

import (
	"context"
	"time"
)

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	// ID orders the entries.
	ID int64
	// At is when it happened (set by AppendAudit).
	At time.Time
	// Kind is "api" (a state-changing API call) or "iscsi" (a login).
	Kind string
	// Actor is the user name or the initiator IQN.
	Actor string
	// Source is the client's address.
	Source string
	// Action is what was asked ("PUT /api/v1/...", "login", "discovery").
	Action string
	// Object is what it was asked of (a path, a target IQN).
	Object string
	// Outcome is "ok", "refused", "throttled" or an HTTP status.
	Outcome string
	// Detail says why, for failures.
	Detail string
}

// AuditFilter selects audit entries; zero fields match all.
type AuditFilter struct {
	// Kind is "api" or "iscsi".
	Kind string
	// Actor and Source match exactly.
	Actor, Source string
	// Since keeps entries at or after it.
	Since time.Time
	// Limit bounds the entries returned, newest first (default 100).
	Limit int
}

// maxAuditText bounds every text field of an entry.
const maxAuditText = 512

func clip(s string) string {
	if len(s) > maxAuditText {
		return s[:maxAuditText]
	}
	return s
}

// AppendAudit adds an entry, stamped now.
func (s *DB) AppendAudit(ctx context.Context, e AuditEntry) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO audit (at, kind, actor, source, action, object, outcome, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, s.stamp(), e.Kind, clip(e.Actor), clip(e.Source), clip(e.Action),
		clip(e.Object), clip(e.Outcome), clip(e.Detail))
	return dbErr(err, "audit entry")
}

// Audit returns the newest entries matching f, newest first.
func (s *DB) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	q, args := `SELECT id, at, kind, actor, source, action, object, outcome, detail FROM audit WHERE 1 = 1`, []any{}
	for _, c := range []struct{ col, v string }{{"kind", f.Kind}, {"actor", f.Actor}, {"source", f.Source}} {
		if c.v != "" {
			q, args = q+` AND `+c.col+` = ?`, append(args, c.v)
		}
	}
	if !f.Since.IsZero() {
		q, args = q+` AND at >= ?`, append(args, f.Since.UnixNano())
	}
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 100
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, dbErr(err, "audit log")
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Kind, &e.Actor, &e.Source, &e.Action, &e.Object, &e.Outcome, &e.Detail); err != nil {
			return nil, dbErr(err, "audit log")
		}
		e.At = fromStamp(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// PruneAudit keeps the newest keep entries of the audit log and deletes
// the rest; it returns how many it deleted.
func (s *DB) PruneAudit(ctx context.Context, keep int) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM audit WHERE id <= (SELECT COALESCE(MAX(id), 0) FROM audit) - ?`, keep)
	if err != nil {
		return 0, dbErr(err, "audit log")
	}
	n, _ := res.RowsAffected()
	return n, nil
}
