// Package ceph is BMI's RBD image store: images, snapshots, copy-on-write
// clones, flatten, deep copy, sparse import and export, and block I/O for
// the iSCSI target, over github.com/ceph/go-ceph (librbd, librados). An
// open Image does its block I/O through a librbd handle of our own cgo
// (rbdio.go), which adds asynchronous reads (Image.ReadAsync).
//
// The store (Store, Image, Dial) needs cgo and the build tags
// `pacific,ceph_preview` against Ceph 16 (Debian 12): `make build` and
// `make test` pass them. Without the tags only the parts that need no Ceph
// are built: name validation (ValidateName) and the mapping of librbd and
// librados errors to service/fault kinds, which lives in one function
// (mapError) and is used by every call.
//
// Every call validates the names it is given before any Ceph call, checks
// its context first, and returns errors that wrap a service/fault sentinel
// and name the image and snapshot:
//
//	fault.ErrNotFound    image, snapshot, parent or pool missing (ENOENT)
//	fault.ErrExists      the target name is taken (EEXIST)
//	fault.ErrConflict    busy: open elsewhere, has clones, protected (EBUSY),
//	                     has snapshots (ENOTEMPTY)
//	fault.ErrInvalid     bad name or size, unprotected clone source, not a
//	                     clone, write past the end (EINVAL, EDOM, ...)
//	fault.ErrUnavailable cluster down or slow (ETIMEDOUT after OpTimeout),
//	                     refused key (EACCES), closed store or image
//
// Cancellation wraps context.Canceled; the librbd errno stays reachable
// with errors.As(err, &interface{ ErrorCode() int }).
//
// librbd calls cannot be interrupted: the context is checked before each
// call, during Flatten (between objects) and during Import (between
// chunks); Config.OpTimeout bounds what any call waits for the cluster.
// Writes through an Image go through librbd's cache (writeback after the
// first Flush): Flush is the durability barrier.
package ceph
