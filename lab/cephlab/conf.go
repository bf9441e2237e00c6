package cephlab

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

// confTemplate is the ceph.conf of a lab cluster. Every path lives under
// Dir; $cluster, $name and $id are Ceph's own metavariables. The settings
// are those the Ceph spike measured for a one-OSD cluster on loopback.
var confTemplate = template.Must(template.New("ceph.conf").Parse(`# written by bmi-lab (lab/cephlab); every file of this cluster is under {{.Dir}}
[global]
fsid = {{.FSID}}
mon_initial_members = a
mon_host = {{.MonHost}}
public_network = {{.IP}}/32
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
keyring = {{.Dir}}/$cluster.$name.keyring
run_dir = {{.Dir}}/run
admin_socket = {{.Dir}}/run/$cluster-$name.asok
pid_file = {{.Dir}}/run/$name.pid
log_file = {{.Dir}}/log/$name.log
mon_cluster_log_file = {{.Dir}}/log/cluster.log
crash_dir = {{.Dir}}/crash
# single node, single OSD
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
auth_allow_insecure_global_id_reclaim = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
# lab disks are often > 70% full
mon_data_avail_warn = 2
mon_data_avail_crit = 1
# memory
mon_osd_cache_size_min = 33554432
rocksdb_cache_size = 33554432
# client defaults: never hang forever
client_mount_timeout = 30
rados_mon_op_timeout = 30
rados_osd_op_timeout = 30

[client]
# one admin socket per client process (otherwise concurrent clients log "(17) File exists")
admin_socket = {{.Dir}}/run/$cluster-$name.$pid.asok

[mon]
mon_data = {{.Dir}}/mon/ceph-$id
keyring = {{.Dir}}/mon/ceph-$id/keyring
mon_memory_target = 268435456
# A snapshot's create or removal waits for a monitor commit (a new OSD map
# with the pool's snap ids), and the mon commits at most once per interval:
# 1 s by default, so an import (two snapshots taken, one removed) cost 3 s.
# The lab's one mon commits within 0.1 s.
paxos_propose_interval = 0.1

[mgr]
mgr_data = {{.Dir}}/mgr/ceph-$id
keyring = {{.Dir}}/mgr/ceph-$id/keyring
mgr_initial_modules = iostat

[osd]
osd_data = {{.Dir}}/osd/ceph-$id
keyring = {{.Dir}}/osd/ceph-$id/keyring
osd_objectstore = bluestore
# a crashed client's watch on an image (bmid's iSCSI target holds one per
# exported disk) expires after this many seconds; until then the image
# cannot be removed. Ceph's default is 30.
osd_client_watch_timeout = 10
bluestore_block_create = true
bluestore_block_size = {{.OSDSize}}
bluestore_fsck_on_mount = false
osd_memory_target = 939524096
osd_memory_cache_min = 134217728
bluestore_cache_autotune = true
osd_op_num_shards = 2
osd_op_num_threads_per_shard = 1
`))

type confData struct {
	Dir, FSID, IP, MonHost string
	OSDSize                int64
}

// monHost is the mon address list in Ceph's syntax.
func monHost(ip string, v2, v1 int) string {
	return fmt.Sprintf("[v2:%s:%d,v1:%s:%d]", ip, v2, ip, v1)
}

func writeConf(path string, d confData) error {
	var b strings.Builder
	if err := confTemplate.Execute(&b, d); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

var monHostRE = regexp.MustCompile(`(?m)^mon_host = \[v2:([0-9.]+):(\d+),v1:[0-9.]+:(\d+)\]`)

// readMonHost returns the mon address and ports of an existing ceph.conf.
func readMonHost(path string) (ip string, v2, v1 int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, 0, err
	}
	m := monHostRE.FindSubmatch(b)
	if m == nil {
		return "", 0, 0, fmt.Errorf("%s has no mon_host line written by cephlab", path)
	}
	v2, _ = strconv.Atoi(string(m[2]))
	v1, _ = strconv.Atoi(string(m[3]))
	return string(m[1]), v2, v1, nil
}

// freePort asks the kernel for a free TCP port on ip. Another process may
// take it before the mon binds it; the mon then fails to start and Start
// reports the mon's log.
func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
