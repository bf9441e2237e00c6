package main

const migrateLong = `migrate-legacy reads an original BMI site and brings it into the state
database of this bmid's configuration, which must be new (or hold only what
an earlier migrate-legacy run brought over); bmid must not be running on it.

It reads the original's bmiconfig.cfg ([bmi] uid and snapshot, [db] path,
[fs] pool, [tftp] paths), its SQLite database, its tgt target files and its
pxelinux/iPXE boot files, and checks every row against Ceph: every image
and snapshot's <uid>img<id> must exist with its protected snapshot, every
provisioned clone must be a clone of its image. Projects and images keep
their ids and their Ceph names (nothing on Ceph changes); provisioned
clones become disks with targets of bmid's; nodes' boot files become boot
configs. It prints what it took over and what needs a hand (the old tgt
targets to stop, NIC labels the old files do not hold, stale files).

Bad input (a corrupt or foreign database, a missing Ceph image, a name that
collides or is not valid here) stops it before anything is written, with one
line naming the row. It writes everything in one transaction, so a crash
leaves nothing; a second run brings over only what the first did not.
--dry-run checks and reports without writing.`
