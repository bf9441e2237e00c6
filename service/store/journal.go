package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// CreateOp writes a new operation (its plan) to the journal.
func (s *DB) CreateOp(ctx context.Context, op core.Operation) error {
	data := op.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	now := s.stamp()
	_, err := s.db.ExecContext(ctx, `INSERT INTO operations (id, kind, project, target, principal, gateway, state, data, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, op.ID, op.Kind, op.Project, op.Target, op.Principal, op.Gateway, string(op.State), string(data), now, now)
	return dbErr(err, fmt.Sprintf("operation %s", op.ID))
}

// SetOpData replaces an operation's data (what its steps recorded), JSON
// as the operation journals it.
func (s *DB) SetOpData(ctx context.Context, id string, data json.RawMessage) error {
	if !json.Valid(data) {
		return fmt.Errorf("operation %s: data is not JSON", id)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE operations SET data = ?, updated_at = ? WHERE id = ?`, string(data), s.stamp(), id)
	return rowsAffected(res, err, fmt.Sprintf("operation %s", id))
}

// SetOpState records an operation's state and error message; like
// MarkStep, only the operation's gateway can.
func (s *DB) SetOpState(ctx context.Context, id string, st core.OpState, msg string) error {
	what := fmt.Sprintf("operation %s", id)
	res, err := s.db.ExecContext(ctx, `UPDATE operations SET state = ?, error = ?, updated_at = ? WHERE id = ? AND gateway = ?`,
		string(st), msg, s.stamp(), id, s.gateway)
	if err := rowsAffected(res, err, what); fault.Of(err) == fault.NotFound {
		if err := s.notOurs(ctx, id, what); fault.Of(err) == fault.Conflict {
			return err
		}
		return fmt.Errorf("%s: %w", what, fault.ErrNotFound)
	} else if err != nil {
		return err
	}
	return nil
}

// SetOpProgress records an operation's progress (0 to 1).
func (s *DB) SetOpProgress(ctx context.Context, id string, p float64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE operations SET progress = ?, updated_at = ? WHERE id = ?`, p, s.stamp(), id)
	return rowsAffected(res, err, fmt.Sprintf("operation %s", id))
}

// MarkStep records a step's journal state; it is written before the step
// acts ("doing") and after ("done"), and likewise when it is undone. Only
// the gateway the operation belongs to can write it (see Gateway.Join):
// a gateway whose operations were taken over, because it stopped renewing
// its lease (paused, cut off), gets a conflict at its next step instead
// of acting beside the one that took over.
func (s *DB) MarkStep(ctx context.Context, opID string, seq int, name string, st core.StepState) error {
	what := fmt.Sprintf("operation %s step %d (%s)", opID, seq, name)
	res, err := s.db.ExecContext(ctx, `INSERT INTO op_steps (op_id, seq, name, state, at)
		SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM operations WHERE id = ? AND gateway = ?)
		ON CONFLICT (op_id, seq) DO UPDATE SET state = excluded.state, at = excluded.at`,
		opID, seq, name, string(st), s.stamp(), opID, s.gateway)
	if err := rowsAffected(res, err, what); fault.Of(err) == fault.NotFound {
		return s.notOurs(ctx, opID, what)
	} else if err != nil {
		return err
	}
	return nil
}

// notOurs explains why an operation's journal refused a write: it is
// unknown, or another gateway's.
func (s *DB) notOurs(ctx context.Context, opID, what string) error {
	var gw string
	if err := s.db.QueryRowContext(ctx, `SELECT gateway FROM operations WHERE id = ?`, opID).Scan(&gw); err != nil {
		return dbErr(err, what)
	}
	return fault.Errorf(fault.Conflict, "%s: the operation is gateway %q's, not this one's (%q): it was taken over", what, gw, s.gateway)
}

const opCols = `id, kind, project, target, principal, gateway, state, data, error, progress, created_at, updated_at`

func (s *DB) scanOp(sc interface{ Scan(...any) error }) (core.Operation, error) {
	var op core.Operation
	var st, data string
	var created, updated int64
	if err := sc.Scan(&op.ID, &op.Kind, &op.Project, &op.Target, &op.Principal, &op.Gateway, &st, &data, &op.Error, &op.Progress, &created, &updated); err != nil {
		return core.Operation{}, err
	}
	op.State = core.OpState(st)
	op.Created, op.Updated = fromStamp(created), fromStamp(updated)
	if !json.Valid([]byte(data)) {
		return core.Operation{}, fmt.Errorf("operation %s: data is not JSON", op.ID)
	}
	op.Data = json.RawMessage(data)
	return op, nil
}

// Op returns an operation with its steps.
func (s *DB) Op(ctx context.Context, id string) (core.Operation, error) {
	op, err := s.scanOp(s.db.QueryRowContext(ctx, `SELECT `+opCols+` FROM operations WHERE id = ?`, id))
	if err != nil {
		return core.Operation{}, dbErr(err, fmt.Sprintf("operation %s", id))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT seq, name, state, at FROM op_steps WHERE op_id = ? ORDER BY seq`, id)
	if err != nil {
		return core.Operation{}, dbErr(err, fmt.Sprintf("operation %s steps", id))
	}
	defer rows.Close()
	for rows.Next() {
		var r core.StepRecord
		var st string
		var at int64
		if err := rows.Scan(&r.Seq, &r.Name, &st, &at); err != nil {
			return core.Operation{}, err
		}
		r.State, r.At = core.StepState(st), fromStamp(at)
		op.Steps = append(op.Steps, r)
	}
	return op, rows.Err()
}

// Ops lists operations, newest first; state "" means all. Steps are not
// loaded (Op does that).
func (s *DB) Ops(ctx context.Context, st core.OpState, limit int) ([]core.Operation, error) {
	if limit <= 0 {
		limit = 1000
	}
	q, args := `SELECT `+opCols+` FROM operations`, []any{}
	if st != "" {
		q, args = q+` WHERE state = ?`, append(args, string(st))
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY created_at DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, dbErr(err, "operations")
	}
	defer rows.Close()
	var out []core.Operation
	for rows.Next() {
		op, err := s.scanOp(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, op)
	}
	return out, rows.Err()
}
