#!/usr/bin/env bash
# Installs the Debian packages BMI's build, tests, lab and benchmarks need,
# only those missing. Idempotent: a second run checks with dpkg-query and
# changes nothing. Non-interactive. Runs apt-get update at most once.
set -euo pipefail

packages=(
  # build: cgo for the Ceph-facing packages
  gcc pkg-config librados-dev librbd-dev
  # the single-node Ceph cluster of the tests and the lab
  ceph-mon ceph-osd ceph-mgr ceph-common uuid-runtime
  # iSCSI: real initiators and the tgtd baseline of the benchmarks
  libiscsi-bin open-iscsi tgt tgt-rbd
  # the original stack baseline of the benchmarks (DHCP + TFTP beside tgtd)
  dnsmasq-base
  # QEMU's libiscsi block driver: the migration test reads disks over iSCSI with qemu-img
  qemu-block-extra
  # the lab: emulated machines, iPXE, libvirt, networking
  qemu-system-x86 qemu-utils ipxe ipxe-qemu libvirt-daemon-system iproute2
  # UEFI lab machines (OVMF under TCG) and the golden image's UEFI loader
  ovmf systemd-boot-efi
  # the golden test image, built without loop mounts
  busybox-static linux-image-amd64 syslinux syslinux-common pxelinux dosfstools mtools fdisk cpio kmod
  # real protocol clients of the boot tests
  udhcpc tftp-hpa atftp curl
  # the throwaway PostgreSQL of the store and crash tests (scripts/with-test-postgres.sh)
  postgresql
  # the floating portal addresses of a several-gateway lab (VRRP; bmi-lab up --gateways N)
  keepalived
  # headless browser: the status page's browser test and the README's screenshots;
  # systemd-analyze verify of the packaged units (systemd)
  chromium systemd
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} Debian packages are installed"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "deps: installing ${#missing[@]} missing package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/bmi-deps-apt.log 2>&1 || {
  echo "deps: apt-get install failed; last lines of /tmp/bmi-deps-apt.log:" >&2
  tail -n 20 /tmp/bmi-deps-apt.log >&2
  exit 1
}
echo "deps: installed ${missing[*]}"
