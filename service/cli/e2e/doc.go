// Package e2e holds the end-to-end test of the bmi CLI: every command of
// the original BMI run in-process against a real bmid (service/daemon) on
// a real Ceph cluster, with hil-mock as HIL. It has no code of its own.
package e2e
