#!/bin/bash
# build-packages.sh rpm|deb BINARY|- OUTDIR: build the packages from a copy
# of the source tree in a temporary directory (nothing is written into the
# tree) and put them in OUTDIR.
#   rpm  rpmbuild -bb packaging/rpm/zfs-live.spec around BINARY (the static
#        release binary: make release)
#   deb  dpkg-buildpackage -b with packaging/debian; BINARY "-" builds from
#        source (meson), a file is used as built (ZFS_LIVE_PREBUILT)
set -eu
kind=${1:?usage: build-packages.sh rpm|deb BINARY|- OUTDIR}
bin=${2:?usage: build-packages.sh rpm|deb BINARY|- OUTDIR}
out=${3:?usage: build-packages.sh rpm|deb BINARY|- OUTDIR}
top=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$top/meson.build" | head -1)
[ "$bin" = - ] || bin=$(realpath "$bin")
mkdir -p "$out"
out=$(realpath "$out")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$tmp/zfs-live-$version
mkdir -p "$src"
# the tree as the work tree has it (tracked and new files, not ignored ones)
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$top" && git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
  done | tar --null -T - -cf -) | tar -xf - -C "$src"
else
  (cd "$top" && tar --exclude='./build*' -cf - .) | tar -xf - -C "$src"
fi

case $kind in
  rpm)
    [ -x "$bin" ] || { echo "build-packages: rpm needs the release binary (make release)" >&2; exit 2; }
    cp "$bin" "$src/zfs-live.bin"
    mkdir -p "$tmp/rpmbuild/SOURCES"
    tar -czf "$tmp/rpmbuild/SOURCES/zfs-live-$version.tar.gz" -C "$tmp" "zfs-live-$version"
    rpmbuild -bb --target x86_64 --define "_topdir $tmp/rpmbuild" \
      --define "zl_version $version" --define "_dbpath $tmp/rpmdb" \
      "$src/packaging/rpm/zfs-live.spec" >"$tmp/rpmbuild.log" 2>&1 ||
      { cat "$tmp/rpmbuild.log" >&2; exit 1; }
    cp "$tmp"/rpmbuild/RPMS/*/*.rpm "$out/"
    ;;
  deb)
    cp -a "$src/packaging/debian" "$src/debian"
    if [ "$bin" != - ]; then
      cp "$bin" "$src/zfs-live.bin"
      export ZFS_LIVE_PREBUILT=zfs-live.bin
    fi
    (cd "$src" && dpkg-buildpackage -b -us -uc) >"$tmp/dpkg.log" 2>&1 ||
      { cat "$tmp/dpkg.log" >&2; exit 1; }
    cp "$tmp"/*.deb "$out/"
    ;;
  *) echo "build-packages: rpm or deb, not '$kind'" >&2; exit 2 ;;
esac
ls "$out"
