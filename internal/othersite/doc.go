// Package othersite holds the test that proves bmi-uat's boot scenarios on
// a site that is not the lab: bmid, hil-mock and the test Ceph run as
// separate processes from built binaries and their own config files, as an
// operator runs them, and the suite's site config names no console
// directory, so boots are proven through bmid's node timeline and consoles
// are read through hil-mock's console API. Only the machines and their
// network are the lab's (lab.Build: QEMU machines on a bridge in a network
// namespace). See TestBootsOnAnotherSite.
package othersite
