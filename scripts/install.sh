#!/bin/sh
# install.sh: install zfs-live under DESTDIR/PREFIX.
#   scripts/install.sh BINARY [DESTDIR] [PREFIX]
# The XAPI plugin directories are made of symlinks to the one binary, one
# per implemented method, as listed by `zfs-live install-layout` (generated
# from the dispatch table).  Links for methods no longer implemented are
# removed, so a link never advertises a missing feature.
set -eu

binary=$1
destdir=${2:-}
prefix=${3:-/usr}
top=$(cd "$(dirname "$0")/.." && pwd)

libexec="$destdir$prefix/libexec"
root="$libexec/xapi-storage-script"

# Never write through someone else's plugin directory: the Python zfs-live
# driver's (same SR type; its files are links into zfs-live-plugins or
# scripts) or zfs-live-deploy's (links through zfs-live/current).
refuse() {
  echo "install.sh: refusing: $1" >&2
  echo "  zfs-live-deploy install [--takeover] handles this (scripts/deploy.sh)" >&2
  exit 3
}
[ -e "$libexec/zfs-live-plugins" ] &&
  refuse "the Python zfs-live driver is installed ($libexec/zfs-live-plugins)"
[ -L "$libexec/zfs-live/current" ] && refuse "zfs-live-deploy manages $libexec/zfs-live"
for d in "$root"/volume/org.xen.xapi.storage.zfs-live "$root"/volume/org.xen.xapi.storage.file-live \
  "$root"/datapath/zfs-live; do
  [ -L "$d" ] && refuse "$d is a link to $(readlink "$d"), not a directory of ours"
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    [ -L "$f" ] || refuse "$f is a file of another driver"
    case $(readlink "$f") in */zfs-live/zfs-live) ;; *) refuse "$f leads to $(readlink "$f")" ;; esac
  done
done

install -d "$libexec/zfs-live" "$destdir$prefix/sbin"
install -m 0755 "$binary" "$libexec/zfs-live/zfs-live.new"
mv -f "$libexec/zfs-live/zfs-live.new" "$libexec/zfs-live/zfs-live"
ln -sfn ../libexec/zfs-live/zfs-live "$destdir$prefix/sbin/zfs-live"

layout=$("$libexec/zfs-live/zfs-live" install-layout)
for dir in $(printf '%s\n' "$layout" | sed 's|/[^/]*$||' | sort -u); do
  install -d "$root/$dir"
  # drop links we made that the layout no longer has
  for link in "$root/$dir"/*; do
    [ -L "$link" ] || continue
    printf '%s\n' "$layout" | grep -qx "$dir/$(basename "$link")" || rm -f "$link"
  done
done
printf '%s\n' "$layout" | while read -r entry; do
  ln -sfn ../../../zfs-live/zfs-live "$root/$entry"
done

# The Ganeti ExtStorage provider: a directory of links to the one binary,
# one per script (`zfs-live install-layout --ganeti`, from the dispatch
# table), and parameters.list.  Ganeti does not create its extstorage log
# directory itself: without it every non-attach action fails.
ganeti="$destdir/srv/ganeti/extstorage/zfs-live"
install -d "$ganeti" "$destdir/var/log/ganeti/extstorage"
glayout=$("$libexec/zfs-live/zfs-live" install-layout --ganeti)
for link in "$ganeti"/*; do
  [ -L "$link" ] || continue
  printf '%s\n' "$glayout" | grep -qx "$(basename "$link")" || rm -f "$link"
done
for action in $glayout; do
  # relative, so that the link works under DESTDIR too
  ln -sfn "../../../..$prefix/libexec/zfs-live/zfs-live" "$ganeti/$action"
done
"$libexec/zfs-live/zfs-live" install-layout --ganeti-parameters >"$ganeti/parameters.list.new"
chmod 0644 "$ganeti/parameters.list.new"
mv -f "$ganeti/parameters.list.new" "$ganeti/parameters.list"

# systemd units; /usr/lib/systemd/system is where Debian's packages put them
unitdir="$destdir$prefix/lib/systemd/system"
install -d "$unitdir"
for unit in zfs-live-nbd.service zfs-live-nbd.socket; do
  sed "s|/usr/sbin/zfs-live|$prefix/sbin/zfs-live|" "$top/packaging/systemd/$unit" \
    >"$unitdir/$unit.new"
  chmod 0644 "$unitdir/$unit.new"
  mv -f "$unitdir/$unit.new" "$unitdir/$unit"
done

install -d "$destdir$prefix/share/man/man8"
for page in "$top"/docs/*.8; do
  install -m 0644 "$page" "$destdir$prefix/share/man/man8/"
done
install -d "$destdir$prefix/share/doc/zfs-live"
install -m 0644 "$top/README.md" "$top/LICENSE" "$top/docs/design.md" \
  "$destdir$prefix/share/doc/zfs-live/"
echo "installed zfs-live into ${destdir:-/}${destdir:+ }($prefix)"
