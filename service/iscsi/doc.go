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
// A disk's target name is "<prefix>:<uid>.<disk id>" (see IQN), its image is
// LUN 0 (iPXE sanboot and Linux both accept it), and every target has its own
// CHAP credentials and initiator ACL. Error recovery level 0 and one
// connection per session are supported.
//
// Commands run on a bounded pool of workers per session, except a plain
// READ of a Volume that can read asynchronously (asyncReader, as
// service/ceph's Image): the read loop starts it and the completion sends
// the answer, so no goroutine or OS thread waits for it.
package iscsi
