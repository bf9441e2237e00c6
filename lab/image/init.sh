#!/bin/sh
# BMI lab golden image /init (busybox). Finds its boot disk, prints the
# state record found there, writes "<hostname> <boot count>", prints a
# marker with its host name on ttyS0 and powers off.
#
# mode ibft:  booted by iPXE's sanboot; logs into its own iSCSI disk from
#             the iBFT (iscsistart -N, then -b), as a diskless node does.
# mode local: no iBFT; the disk is a local one (virtio or SCSI).
# Host name: the iBFT NIC's (DHCP option 12 via iPXE), else bmi.host= on
# the kernel command line, else the SMBIOS system serial, else node-<mac>.
# Markers (match them as substrings: serial output carries escapes):
#   BMI-LAB-STATE <previous host> <previous count> | BMI-LAB-STATE none
#   BMI-LAB-BOOTED <host> mode=<mode> uptime=<seconds>
#   BMI-LAB-FAILED <reason>
#
# mode stay-up (bmi.stayup=<seconds> on the kernel command line, 0 for
# ever; the lab's golden-stayup image): after the marker the node does not
# power off. iscsid (open-iscsi, config /etc/iscsi/iscsid.conf) takes over
# the iBFT session and recovers it when the target goes away, then
# bmi-lab-io writes, reads back and verifies blocks in the scratch area
# after partition 2 until the time is up or the node is powered off:
#   BMI-LAB-STAYUP iscsid=synced session=<sid> recovery_tmo=<s>
#   BMI-LAB-IO t=<s> writes=<n> reads=<n> errors=<n> mismatches=<n> max_stall_ms=<n> ...
#   BMI-LAB-IO-ERROR ... (the block, on every error or mismatch)
#
# mode install (bmi.install=<url> on the kernel command line): the
# installer of the classic install-to-disk path, netbooted by an install
# server. It brings up the NIC with MAC bmi.mac= at bmi.ip=/bmi.mask= (the
# address iPXE got by DHCP), downloads the image from <url> with wget onto
# bmi.disk= (default /dev/vda), syncs, prints
#   BMI-LAB-INSTALLED disk=<disk> bytes=<content length> seconds=<download+write> uptime=<seconds>
# and powers off: whoever runs the install then sets the boot device to
# the disk and powers the machine on, as a provisioning conductor does.
export PATH=/bin:/sbin
[ -f /etc/bmi-lab.env ] && . /etc/bmi-lab.env   # SCRATCH_OFF, SCRATCH_SIZE (the image layout)
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec >/dev/ttyS0 2>&1
up() { cut -d' ' -f1 /proc/uptime; }
log() { echo "BMI-LAB-T $(up) $*"; }
fail() { echo "BMI-LAB-FAILED $* (uptime $(up))"; sleep 0.2; poweroff -f; }
K=$(uname -r)
log init-start kernel=$K

host=auto; lto=60; stayup=; inst=; iip=; imask=; imac=; idisk=/dev/vda
for w in $(cat /proc/cmdline); do
  case "$w" in
    bmi.host=*) host=${w#*=} ;;
    bmi.install=*) inst=${w#*=} ;;
    bmi.ip=*) iip=${w#*=} ;;
    bmi.mask=*) imask=${w#*=} ;;
    bmi.mac=*) imac=${w#*=} ;;
    bmi.disk=*) idisk=${w#*=} ;;
    bmi.logintimeout=*) lto=${w#*=} ;;   # iscsistart -b retries forever without a bound
    bmi.stayup=*) stayup=${w#*=} ;;
  esac
done

while read -r m; do insmod /lib/modules/$K/$m 2>/dev/null; done < /etc/modules.order
ip link set lo up
log modules-loaded

install() {
  log install-start
  nic=
  for n in /sys/class/net/*; do [ "$(cat $n/address)" = "$imac" ] && nic=${n##*/}; done
  [ -n "$nic" ] || fail "installer: no NIC with MAC $imac"
  ifconfig $nic $iip netmask $imask up || fail "installer: ifconfig $nic $iip"
  log "install-net $nic $iip"
  for i in $(seq 1 300); do [ -b $idisk ] && break; sleep 0.1; done
  [ -b $idisk ] || fail "installer: no disk $idisk after 30 s"
  # shown without the credentials the URL may carry
  log "install-download ${inst##*@} -> $idisk"
  t0=$(up)
  wget -S -O $idisk "$inst" 2>/tmp/wget.log; rc=$?
  [ $rc = 0 ] || { tail -n 3 /tmp/wget.log; fail "installer: download rc=$rc"; }
  sync
  t1=$(up)
  len=$(sed -n 's/^ *[Cc]ontent-[Ll]ength: *\([0-9]*\).*/\1/p' /tmp/wget.log | tail -n 1)
  echo "BMI-LAB-INSTALLED disk=$idisk bytes=${len:-unknown} seconds=$(awk "BEGIN{printf \"%.2f\", $t1-$t0}") uptime=$(up)"
  echo "(flush)"
  sleep 0.2
  poweroff -f
}
[ -n "$inst" ] && install

# stay_up hands the session to iscsid and runs the verifying workload.
stay_up() {
  [ $mode = ibft ] || fail "stay-up needs an iSCSI disk (mode $mode)"
  sess=$(ls -d /sys/class/iscsi_session/session* 2>/dev/null | head -n 1)
  [ -n "$sess" ] || fail "stay-up: no iSCSI session"
  echo "InitiatorName=$(cat $IB/initiator/initiator-name)" > /etc/iscsi/initiatorname.iscsi
  mkdir -p /etc/iscsi/nodes /etc/iscsi/send_targets /etc/iscsi/ifaces /run/lock/iscsi
  want=$(sed -n 's/^node.session.timeo.replacement_timeout = //p' /etc/iscsi/iscsid.conf)
  conn=$(ls -d /sys/class/iscsi_connection/connection* 2>/dev/null | head -n 1)
  port0=$(cat $conn/local_port 2>/dev/null)
  # -f: foreground, its log ("iscsid: ...") straight on the console (never
  # through a pipe: a pipe that closes kills it with SIGPIPE); -n: no pid file.
  iscsid -f -n -c /etc/iscsi/iscsid.conf -i /etc/iscsi/initiatorname.iscsi &
  # iscsid syncs the session at start: it logs in again on a connection of
  # its own (a new local port: the proof it took over) and sets the
  # session's recovery timeout from its config.
  for i in $(seq 1 600); do
    port=$(cat $conn/local_port 2>/dev/null)
    [ -n "$port" ] && [ "$port" != "$port0" ] && [ "$(cat $sess/state 2>/dev/null)" = LOGGED_IN ] && break
    sleep 0.1
  done
  [ -n "$port" ] && [ "$port" != "$port0" ] || fail "stay-up: iscsid did not take over ${sess##*/} in 60 s (local port $port0 -> ${port:-none})"
  [ "$(cat $sess/recovery_tmo)" = "$want" ] || fail "stay-up: ${sess##*/} has recovery_tmo $(cat $sess/recovery_tmo), want $want"
  echo "BMI-LAB-STAYUP iscsid=synced session=${sess##*/} local_port=$port0->$port recovery_tmo=$want noop=$(cat $conn/recv_tmo 2>/dev/null)/$(cat $conn/ping_tmo 2>/dev/null) scsi_timeout=$(cat /sys/block/$disk/device/timeout) seconds=$stayup"
  bmi-lab-io --node "$host" --device /dev/$disk --offset $SCRATCH_OFF --size $SCRATCH_SIZE --duration ${stayup}s
  echo "BMI-LAB-IO-EXIT rc=$?"
}

IB=/sys/firmware/ibft
if [ -d $IB/target0 ]; then mode=ibft; else mode=local; fi
if [ -d $IB ]; then echo "BMI-LAB-IBFT present: $(ls $IB | tr '\n' ' ')"; else echo "BMI-LAB-IBFT absent"; fi

if [ $mode = ibft ]; then
  h=$(cat $IB/ethernet0/hostname 2>/dev/null); [ -n "$h" ] && host=$h
  # iscsistart does not load iscsi_ibft itself (done above with the modules)
  iscsistart -N; rc=$?
  log "iscsistart -N rc=$rc"
  [ $rc = 0 ] || fail "iscsistart -N rc=$rc"
  timeout $lto iscsistart -b; rc=$?
  log "iscsistart -b rc=$rc"
  [ $rc = 0 ] || fail "iscsistart -b rc=$rc"
fi
if [ "$host" = auto ] || [ -z "$host" ]; then
  h=$(cat /sys/class/dmi/id/product_serial 2>/dev/null | tr -cd 'A-Za-z0-9._-')
  if [ -n "$h" ]; then host=$h; else host=node-$(cat /sys/class/net/*/address | grep -v 00:00:00:00:00:00 | head -1 | tr -d :); fi
fi

# the disk: the first sd*/vd* with a second partition
disk=
for i in $(seq 1 300); do
  for b in /sys/block/sd* /sys/block/vd*; do
    [ -e "$b/${b##*/}2" ] && disk=${b##*/} && break 2
  done
  sleep 0.1
done
[ -n "$disk" ] || fail "no disk with a partition 2 after 30 s"
P2=/dev/${disk}2
[ -b $P2 ] || mknod $P2 b $(tr ':' ' ' < /sys/block/$disk/${disk}2/dev)
log "disk $disk ($(cat /sys/block/$disk/size) sectors)"
for s in /sys/class/iscsi_session/session*; do
  [ -d "$s" ] && echo "BMI-LAB-SESSION ${s##*/} target=$(cat $s/targetname) initiator=$(cat $s/initiatorname 2>/dev/null)"
done

rec=$(dd if=$P2 bs=512 count=1 2>/dev/null | tr -d '\000' | head -n 1)
count=0
case "$rec" in
  "BMI1 "*) set -- $rec; prev="$2 $3"; count=$3 ;;
  *) prev=none ;;
esac
echo "BMI-LAB-STATE $prev"
new=$((count + 1))
printf 'BMI1 %s %d\n' "$host" $new | dd of=$P2 bs=512 count=1 conv=sync,fsync 2>/dev/null || fail "write $P2"
sync
echo 3 > /proc/sys/vm/drop_caches
back=$(dd if=$P2 bs=512 count=1 2>/dev/null | tr -d '\000' | head -n 1)
echo "BMI-LAB-WROTE ${back#BMI1 }"
echo "BMI-LAB-BOOTED $host mode=$mode uptime=$(up)"
[ -n "$stayup" ] && stay_up
echo "(flush)"
sleep 0.2
poweroff -f
