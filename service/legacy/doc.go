// Package legacy brings an original BMI site over (`bmid migrate-legacy`):
// it reads the original's configuration (bmiconfig.cfg), its SQLite
// database (tables project and image, reference §6.1), its tgt target
// files (/etc/tgt/conf.d) and its boot files (pxelinux.cfg/01-<mac> and
// <node>.ipxe), checks every row against Ceph (the <uid>img<id> images
// with their protected snapshot, the clones' parents), and writes what it
// found into BMI's state in one transaction: projects and images with
// their ids and Ceph names kept, provisioned clones as disks with
// targets, nodes' boot files as boot configs. Nothing on Ceph is changed.
// Bad input stops it before anything is written, with one line naming
// the row; a second run brings over only what the first did not.
package legacy
