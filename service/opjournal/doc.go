// Package opjournal runs multi-step operations so that each one completes
// or leaves no trace, also across a crash of the process.
//
// An operation is declared once (Op): its kind, its steps in order, each
// with the action that undoes it, the name of its commit step, and a typed
// data struct that its steps read and fill in. Start journals the data (as
// versioned JSON) and runs the steps, writing each step's state to the
// Journal before it acts ("doing") and after ("done"). A failure before the
// commit step is done undoes every step taken, in reverse; a failure after
// it leaves the operation failed, to be finished forward by RetryFailed.
// After a crash, RecoverAll does the same for every unfinished operation
// from its journal. Steps must be idempotent: a crash can fall after a step
// acted and before the journal says so, and then the step is done again, or
// undone, without knowing how far it got.
//
// The package knows nothing of what the steps act on. A hook (SetHook)
// is called at every point where a crash can fall, so that crash tests can
// kill the process there.
package opjournal
