// Package core is BMI's brain: the operations on projects, images,
// snapshots, disks and boot configs, their authorisation, and the checks
// that compare Ceph, the iSCSI target and the boot files with the database.
//
// Each multi-step operation is declared once, in the file of its entry
// point (provision.go: Provision and Deprovision, copy.go: import, copy and
// node snapshot, disks.go, boot.go, remove.go, export.go, upload.go): its
// typed data, its steps in order with their undo, and its commit step by
// name. service/opjournal runs them: it journals the data and each step's
// progress in the state database, rolls an operation back on a failure
// before its commit step and finishes it forward after, also after a crash
// (Start, Reconcile, RetryFailed). The steps several operations share are
// in steps.go, the idempotent Ceph helpers they use in cephsteps.go.
//
// The package talks to its collaborators through interfaces cut to what it
// uses (deps.go): the state database as Projects, Rows, Targets, Boots,
// Leases and opjournal.Journal; Ceph as Images; the iSCSI target as
// Exporter; legacy boot files as BootFiles; HIL as Nodes, Networks and
// Authorizer. The daemon adapts the concrete packages to them.
package core
