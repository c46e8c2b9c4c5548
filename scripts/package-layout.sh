#!/bin/sh
# package-layout.sh BINARY DESTDIR rpm|deb: the files of the packages,
# laid out under DESTDIR (the RPM spec's %install and debian/rules call
# this, so both carry the same layout):
#   scripts/install.sh's layout (binary, XAPI plugin links, units, man page)
#   the Ganeti provider in /usr/share/ganeti/extstorage/zfs-live, where
#     packaged providers go, and /srv/ganeti/extstorage/zfs-live (Ganeti's
#     default search path) a link to it
#   /usr/sbin/zfs-live-deploy and the units it installs from
#   the environment file: /etc/sysconfig/zfs-live (rpm) or
#     /etc/default/zfs-live (deb)
# deb: no XAPI plugins (the Debian packages are for Ganeti nodes).
set -eu
bin=$1
dest=$2
flavour=$3
top=$(cd "$(dirname "$0")/.." && pwd)

"$top/scripts/install.sh" "$bin" "$dest" /usr >/dev/null

share=$dest/usr/share/ganeti/extstorage/zfs-live
install -d "$share"
for f in "$dest/srv/ganeti/extstorage/zfs-live"/*; do
  n=$(basename "$f")
  if [ -L "$f" ]; then
    ln -sfn ../../../../libexec/zfs-live/zfs-live "$share/$n"
  else
    install -m 0644 "$f" "$share/$n"
  fi
done
rm -rf "$dest/srv/ganeti/extstorage/zfs-live"
ln -s ../../../usr/share/ganeti/extstorage/zfs-live "$dest/srv/ganeti/extstorage/zfs-live"

install -D -m 0755 "$top/scripts/deploy.sh" "$dest/usr/sbin/zfs-live-deploy"
install -d "$dest/usr/share/zfs-live/systemd"
install -m 0644 "$top/packaging/systemd/zfs-live-nbd.service" \
  "$top/packaging/systemd/zfs-live-nbd.socket" "$dest/usr/share/zfs-live/systemd/"

case $flavour in
  rpm) envfile=$dest/etc/sysconfig/zfs-live ;;
  deb)
    envfile=$dest/etc/default/zfs-live
    rm -rf "$dest/usr/libexec/xapi-storage-script"
    ;;
  *) echo "package-layout: rpm or deb, not '$flavour'" >&2; exit 2 ;;
esac
install -D -m 0644 "$top/packaging/zfs-live.env" "$envfile"
