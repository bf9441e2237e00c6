package iscsi

import "time"

// Observer hears what the target does, for metrics. Its methods are called
// on the I/O path: they must be quick and safe for concurrent use, and they
// are never given a node's name, an initiator name or a secret.
type Observer interface {
	// Login reports the outcome of a login attempt: result is "ok",
	// "auth_failed" (credentials, ACL or throttling), "redirected" (to
	// the gateway that exports the target: Config.Locator) or "refused"
	// (any other reason).
	Login(discovery bool, result string)
	// Command reports a finished SCSI command: op is "read", "write" or
	// "other"; status is "good", "check_condition",
	// "reservation_conflict", "busy", "other" or "aborted"; bytes is the
	// data moved (read or written); d runs from the command's arrival to
	// its answer being queued.
	Command(op, status string, bytes int, d time.Duration)
	// Abort reports a task management function that aborts commands:
	// function is "abort_task", "abort_task_set", "clear_task_set" or
	// "lun_reset"; n is the number of commands it aborted.
	Abort(function string, n int)
}

// Stats is a snapshot of the target's state, read at scrape time.
type Stats struct {
	// Targets is the number of exported targets.
	Targets int
	// Sessions is the number of normal (non-discovery) sessions.
	Sessions int
	// InFlight is the number of SCSI commands received and not yet answered.
	InFlight int
}

// Stats counts the target's exports, sessions and commands in flight.
func (t *Target) Stats() Stats {
	t.mu.Lock()
	st := Stats{Targets: len(t.exports)}
	var sess []*session
	for _, e := range t.exports {
		for s := range e.sessions {
			sess = append(sess, s)
		}
	}
	t.mu.Unlock()
	st.Sessions = len(sess)
	for _, s := range sess {
		s.mu.Lock()
		st.InFlight += len(s.tasks)
		s.mu.Unlock()
	}
	return st
}

// opClass sorts a CDB into "read", "write" or "other".
func opClass(cdb []byte) string {
	if len(cdb) == 0 {
		return "other"
	}
	switch cdb[0] {
	case 0x08, 0x28, 0xa8, 0x88: // READ (6), (10), (12), (16)
		return "read"
	case 0x0a, 0x2a, 0xaa, 0x8a: // WRITE (6), (10), (12), (16)
		return "write"
	}
	return "other"
}

// statusName names a SCSI status for metrics.
func statusName(st byte) string {
	switch st {
	case statusGood:
		return "good"
	case statusCheckCondition:
		return "check_condition"
	case statusReservationConflict:
		return "reservation_conflict"
	case statusBusy, statusTaskSetFull:
		return "busy"
	}
	return "other"
}

// observeCommand reports a finished command to the observer, if any.
func (s *session) observeCommand(t *task, res *scsiResult, aborted bool) {
	o := s.t.cfg.Observer
	if o == nil || t.arrived.IsZero() {
		return
	}
	op := opClass(t.req.cdb)
	status, n := "aborted", 0
	if res != nil && !aborted {
		status = statusName(res.status)
		switch op {
		case "read":
			n = len(res.data)
		case "write":
			n = t.received
		}
	}
	o.Command(op, status, n, time.Since(t.arrived))
}
