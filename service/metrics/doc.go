// Package metrics holds bmid's Prometheus collectors for its planes: the
// iSCSI target, network boot (DHCP, TFTP, HTTP, boots end to end), the
// operations, and the Ceph client. Each plane package declares a small
// observer interface; the types here implement them over collectors
// registered on a registry the caller injects (no global registry).
//
// Label values are bounded: no series carries a node, project, image,
// initiator or target name, an address or a secret.
package metrics
