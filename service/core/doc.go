// Package core is BMI's brain: the operations on projects, images,
// snapshots, disks and boot configs, their authorisation, and the journal
// that makes every multi-step operation complete or leave no trace, also
// after a crash.
//
// Each multi-step operation is a plan of idempotent steps. The plan and each
// step's progress are written to the journal in the state database before
// the step acts and after it has acted. A failure before the plan's commit
// step undoes every step taken (in reverse); a failure after it is retried
// forward. At start-up, and on demand (Reconcile), unfinished operations are
// finished the same way, and Ceph, the iSCSI target list and the boot files
// are compared with the database.
//
// The package talks to its collaborators through small interfaces declared
// here (Store, Images, Exporter, BootFiles, Nodes, Authorizer); the daemon
// adapts the concrete packages to them.
package core
