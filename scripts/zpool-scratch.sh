#!/bin/sh
# zpool-scratch.sh CMD...: run CMD with --pool <a scratch zfs-fuse pool> on a
# sparse file, starting zfs-fuse if it is not running; the pool is destroyed
# afterwards.
set -eu
if ! zpool list -H >/dev/null 2>&1; then
  zfs-fuse --pidfile /run/zfs-fuse.pid
  i=0
  until zpool list -H >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 50 ] || { echo "zfs-fuse did not start" >&2; exit 1; }
    sleep 0.1
  done
fi
dir=$(mktemp -d /var/tmp/zl-bench-pool.XXXXXX)
pool="zlb$$"
truncate -s 8G "$dir/pool.img"
zpool create "$pool" "$dir/pool.img" >/dev/null
trap 'zpool destroy -f "$pool"; rm -rf "$dir"' EXIT
"$@" --pool "$pool"
