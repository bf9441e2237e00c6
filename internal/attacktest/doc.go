// Package attacktest attacks bmid's provisioning-network services the way
// a hostile machine on that network would, with real clients (busybox
// udhcpc, curl, libiscsi's iscsi-ls and iscsi-inq) from a network
// namespace of its own: the boot services (DHCP, the boot HTTP listener,
// the iSCSI target with its login guard, the HIL power gate, the audit
// log) run as bmid wires them, in a second namespace. It has tests only.
package attacktest
