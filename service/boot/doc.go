// Package boot holds what the network boot services (service/dhcpd,
// service/tftpd, service/ipxe) share: the steps of a node's boot timeline
// and a memory Timeline that records them, and the fault injection that
// tests and the lab use to make DHCP, TFTP and HTTP lossy or slow.
//
// Each service declares its own small Recorder interface; *Timeline
// satisfies all of them.
package boot
