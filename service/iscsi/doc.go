// Package iscsi is BMI's iSCSI target: our own RFC 7143 transport (PDU
// codec, login with CHAP, discovery, full-feature phase with several
// commands in flight per session) in front of gotgt's SCSI engine
// (github.com/gostor/gotgt/pkg/scsi), which emulates the SPC/SBC command
// sets over a Volume.
//
// It is the only package of BMI that imports gotgt, and it never imports
// gotgt's own transport (pkg/port/iscsit). gotgt's package-level state (the
// backing-store registry and its logrus logger) is set up once, behind
// Target; every target and LU this package creates is private to the Target
// that created it.
//
// A disk's target name is built by service/core (core.IQN:
// "<prefix>:<uid>.<disk id>"), its image is LUN 0 (iPXE sanboot and Linux
// both accept it), and every target has its own CHAP credentials and
// initiator ACL. Error recovery level 0 and one connection per session are
// supported.
//
// The commands gotgt lacks or gets wrong are ours (sbc.go, opcodes.go):
// WRITE SAME (10/16, with UNMAP and NDOB) over the volume's write-same and
// write-zeroes, COMPARE AND WRITE, ORWRITE, GET LBA STATUS, REPORT
// SUPPORTED OPERATION CODES, the Block Limits, Block Device
// Characteristics and Logical Block Provisioning VPD pages, and the
// reservations: SPC-2 RESERVE/RELEASE and SPC-3 persistent reservations
// (reserve.go, pr.go), kept in a ReservationStore (bmid's state database)
// so that they survive a restart. CDB fields are decoded in cdb.go, sense
// codes named in sense.go.
//
// Commands run on a bounded pool of workers per session, except a plain
// READ of a Volume that can read asynchronously (asyncReader, as
// service/ceph's Image) and a plain WRITE of one that can write
// asynchronously (asyncWriter, write.go): the read loop starts it and the
// completion sends the answer, so no goroutine or OS thread waits for it.
package iscsi
