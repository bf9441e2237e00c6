// Package ipxe renders the per-node iPXE scripts that make a node boot its
// disk over iSCSI, and serves them over HTTP at GET /boot/<mac>.ipxe on
// the provisioning network's own listener, only to the machine that booted
// with that MAC (Handler: lease holder, one-time token from DHCP).
//
// A script sets the iSCSI initiator name and CHAP credentials through
// iPXE settings, then runs `sanboot iscsi:<portal>::<port>:<lun>:<iqn>`,
// retrying with a doubling back-off a bounded number of times before it
// prints a clear message and reboots. It names no network interface: iPXE
// has already configured the one it booted from. A MAC without a boot
// config gets a script that says why and exits, so the firmware moves on
// to its next boot device.
//
// Templates are embedded; an operator may override either by putting a file
// of the same name in a template directory. Every value that reaches a
// template has been validated (names that go into commands) or escaped
// (names that are only shown), so no node or disk name can change the
// structure of a script.
package ipxe
