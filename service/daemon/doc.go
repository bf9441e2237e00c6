// Package daemon is bmid's composition root: it builds every component from
// the configuration (state database, Ceph, the iSCSI target, HIL, the boot
// services, the core operations and the API server), hands each consumer
// the concrete packages through the interfaces it declares (adapting the
// few methods that differ: core.Images is service/ceph's Store with three
// adapted methods), recovers unfinished operations and re-exports targets
// at start, and runs every server under one errgroup until the context
// ends.
//
// It is the only package that imports everything; it needs cgo because it
// links service/ceph (build tags pacific,ceph_preview).
package daemon
