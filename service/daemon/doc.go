// Package daemon is bmid's composition root: it builds every component from
// the configuration (state database, Ceph, the iSCSI target, HIL, the boot
// services, the core operations and the API server), adapts the concrete
// packages to the interfaces their consumers declare (cut to what each
// uses: core.Rows, core.Images, ...; mostly the concrete types as they
// are), recovers
// unfinished operations and re-exports targets at start, and runs every
// server under one errgroup until the context ends.
//
// It is the only package that imports everything; it needs cgo because it
// links service/ceph (build tags pacific,ceph_preview).
package daemon
