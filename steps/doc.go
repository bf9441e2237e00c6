// Package steps holds the godog step definitions of BMI's acceptance suite
// (../features). A scenario talks to a Site only as an operator would: the
// bmi API client (service/client), HIL's API (service/hil), read-only Ceph
// checks through the rbd CLI with the site's ceph.conf, and iSCSI logins
// through a real initiator (libiscsi's iscsi-ls and iscsi-readcapacity16).
//
// Scenario state lives in a World carried in the context.Context of each
// step (From); there are no package variables. Every step that creates
// something appends an entry to the run's Journal before acting, and the
// scenario's entries are undone last-in first-out, with negative checks,
// when the scenario ends (passed or failed), through the same API an
// operator uses. Journal.Replay undoes what a killed run left behind.
//
// The package is pure Go (no cgo): bmi-uat links it. The in-process local
// site (bmid on a private Ceph cluster and hil-mock) lives in the package's
// tests, which need the pacific,ceph_preview build tags.
package steps
