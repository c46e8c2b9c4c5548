#!/bin/sh
# deps.sh: install the Debian packages a job needs, idempotently.
#   scripts/deps.sh build   what `make` needs
#   scripts/deps.sh test    what `make check` needs (includes build)
#   scripts/deps.sh bench   what bench/ needs (includes test)
# Only missing packages are installed; nothing is done when all are there.
# Runs apt-get as root, or through sudo when not root.
set -eu

build_pkgs="gcc make pkg-config meson ninja-build libjansson-dev libgnutls28-dev nettle-dev
  liburing-dev libssl-dev binutils"
test_pkgs="clang-format zfs-fuse libcmocka-dev python3 python3-pytest btrfs-progs xfsprogs e2fsprogs
  util-linux mount nbdkit libnbd-bin python3-libnbd qemu-utils fio gnutls-bin fuse3
  procps iproute2 file libseccomp-dev glusterfs-server glusterfs-client qemu-system-x86
  linux-image-amd64 busybox-static libvhdi-utils
  rpm rpm2cpio cpio debhelper dpkg-dev fakeroot ansible-core systemd"
bench_pkgs="zfs-fuse"

case "${1:-build}" in
  build) want="$build_pkgs" ;;
  test) want="$build_pkgs $test_pkgs" ;;
  bench) want="$build_pkgs $test_pkgs $bench_pkgs" ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1; then
  sudo="sudo"
else
  echo "deps: need root (or sudo) to install:$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
