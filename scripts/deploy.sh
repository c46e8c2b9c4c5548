#!/bin/bash
# zfs-live-deploy: install, upgrade, roll back and remove zfs-live on a host
# in one command, atomically.
#
#   zfs-live-deploy [--root R] install [--takeover [--pool P]... [--no-adopt]] [--side S] BINARY|PACKAGE
#     --takeover  replace the Python predecessor, adopting its SRs in the
#                 pools named by --pool (default: every imported pool);
#                 --no-adopt: its files only; refused if a volume cannot
#                 be adopted (snapshots, clones) unless --force
#   zfs-live-deploy [--root R] rollback
#   zfs-live-deploy [--root R] uninstall
#   zfs-live-deploy [--root R] status
#   zfs-live-deploy [--root R] recover     (finish what a crash cut off)
#
# Layout (under R, default /):
#   usr/libexec/zfs-live/versions/<version>-<sha>/   one directory per version:
#       zfs-live                  the binary
#       xapi/volume/org.xen.xapi.storage.<type>/<Method> -> ../../../zfs-live
#       xapi/datapath/zfs-live/<Method>                  -> ../../../zfs-live
#       ganeti/<action> -> ../zfs-live, ganeti/parameters.list
#       systemd/zfs-live-nbd.{service,socket}
#   usr/libexec/zfs-live/current  -> versions/<id>    (the one switch)
#   usr/libexec/zfs-live/previous -> versions/<id>    (what rollback returns to)
#   usr/libexec/zfs-live/zfs-live -> current/zfs-live
#   usr/sbin/zfs-live             -> ../libexec/zfs-live/zfs-live
#   usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.<type>
#       -> ../../zfs-live/current/xapi/volume/org.xen.xapi.storage.<type>
#   usr/libexec/xapi-storage-script/datapath/zfs-live -> ../../zfs-live/current/...
#   srv/ganeti/extstorage/zfs-live and usr/share/ganeti/extstorage/zfs-live
#       -> .../usr/libexec/zfs-live/current/ganeti
# so the plugin directories, the binary and the Ganeti provider all change
# together with one rename(2) of `current`.  The binary, found through
# /proc/self/exe at versions/<id>/zfs-live, still finds the plugin links
# three levels up (usr/libexec/xapi-storage-script), as nbd/call.c expects.
#
# Every change is a transaction: the paths it may touch are copied (cp -a)
# into var/lib/zfs-live/deploy/txn before the first change; any failing step
# (or, after a crash, the next run of this command) puts them back byte for
# byte and removes the half-made version.  Steps, in order, each a fault
# point (ZFS_LIVE_DEPLOY_FAULT=<step> fails there, <step>:kill dies there
# by SIGKILL):
#   backup stage verify-staged takeover units links switch verify-installed
#   adopt-srs restart prune   (uninstall: backup remove restart;
#   rollback: backup units switch verify-installed restart)
# After the last step the transaction commits (the backup is dropped; with
# --takeover it is kept as var/lib/zfs-live/deploy/predecessor for rollback).
#
# Exit status: 0 done, 1 failed (and restored), 2 usage, 3 refused (the
# Python predecessor found; --takeover to replace it).
set -eu
umask 022

PROG=zfs-live-deploy
ROOT=/
SIDE=both
TAKEOVER=0
NO_ADOPT=0
FORCE=0
POOLS=()

die() { echo "$PROG: $*" >&2; exit 1; }
usage() {
  cat >&2 <<EOF
usage: $PROG [--root R] install [--takeover [--pool POOL]... [--force] | --no-adopt] [--side xapi|ganeti|both] BINARY|PACKAGE
       $PROG [--root R] rollback | uninstall | status | recover
EOF
  exit 2
}
say() { echo "$PROG: $*"; }

# --- paths -------------------------------------------------------------------

set_paths() {
  R=${ROOT%/}
  LIB=$R/usr/libexec/zfs-live
  VERS=$LIB/versions
  XSS=$R/usr/libexec/xapi-storage-script
  STATE=$R/var/lib/zfs-live/deploy
  TXN=$STATE/txn
  PRED=$STATE/predecessor
  UNITDIR=$R/usr/lib/systemd/system
  GANETI_DIRS="$R/srv/ganeti/extstorage/zfs-live $R/usr/share/ganeti/extstorage/zfs-live"
  SR_TYPES="zfs-live file-live"
}

# Our entries outside versions/, each replaced whole by a transaction.
managed_paths() {
  printf '%s\n' "$LIB/current" "$LIB/previous" "$LIB/zfs-live" "$R/usr/sbin/zfs-live" \
    "$XSS/datapath/zfs-live" "$UNITDIR/zfs-live-nbd.service" "$UNITDIR/zfs-live-nbd.socket"
  for t in $SR_TYPES; do printf '%s\n' "$XSS/volume/org.xen.xapi.storage.$t"; done
  for g in $GANETI_DIRS; do printf '%s\n' "$g"; done
}

# The Python predecessor's files (reference: its installer.sh): its plugin
# root, its datapath plugin, the shim libraries and the xe wrapper.
predecessor_paths() {
  local p
  for p in "$R/usr/libexec/zfs-live-plugins" "$R/usr/lib/python3.6/site-packages/shim" \
    "$R/etc/systemd/system/xapi-storage-script-shim.service" \
    "$R/opt/xensource/bin/xe.real" "$R/usr/bin/xe.real"; do
    [ -e "$p" ] || [ -L "$p" ] && printf '%s\n' "$p"
  done
  # xe itself is the wrapper where xe.real sits beside it
  for p in "$R/opt/xensource/bin" "$R/usr/bin"; do
    [ -e "$p/xe.real" ] && printf '%s\n' "$p/xe"
  done
  # its datapath plugin (URI scheme raw+qdisk), when it leads into its root
  p=$XSS/datapath/raw+qdisk
  if [ -e "$p" ] || [ -L "$p" ]; then
    case "$(readlink "$p") $(readlink "$p/Plugin.Query")" in
      *zfs-live-plugins* | *.py*) printf '%s\n' "$p" ;;
    esac
  fi
  p=$XSS/volume/org.xen.xapi.storage.zfs-live
  if [ -e "$p" ] || [ -L "$p" ]; then
    is_predecessor_dir "$p" && printf '%s\n' "$p"
  fi
  return 0
}

# Is this plugin directory someone else's?  Ours: a link through
# zfs-live/current, or (scripts/install.sh, make install) a directory of
# links to zfs-live/zfs-live only.
is_predecessor_dir() {
  local d=$1 e t
  if [ -L "$d" ]; then
    t=$(readlink "$d")
    case $t in */zfs-live/current/*) return 1 ;; esac
    return 0
  fi
  [ -d "$d" ] || return 0
  for e in "$d"/* "$d"/.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    [ -L "$e" ] || return 0
    case $(readlink "$e") in */zfs-live/zfs-live | */zfs-live/current/zfs-live) ;; *) return 0 ;; esac
  done
  return 1
}

# The package that owns our binary's path, if a package manager installed
# it (then that package manager upgrades and removes it, not this).
package_owner() {
  local f=/usr/libexec/zfs-live/zfs-live
  [ -f "$R$f" ] && [ ! -L "$R$f" ] || return 0
  # (only where an rpm database is: a query would make one)
  if command -v rpm >/dev/null 2>&1 && [ -d "$R$(rpm --eval '%{_dbpath}')" ] &&
    rpm --root "${R:-/}" -qf "$f" >/dev/null 2>&1; then
    rpm --root "${R:-/}" -qf --qf '%{NAME}\n' "$f"
    return 0
  fi
  if command -v dpkg >/dev/null 2>&1 && [ -f "$R/var/lib/dpkg/status" ]; then
    dpkg --root="${R:-/}" -S "$f" 2>/dev/null | cut -d: -f1 && return 0
  fi
  return 0
}

# --- fault points and the transaction -----------------------------------------

step() {
  STEP=$1
  case ${ZFS_LIVE_DEPLOY_FAULT:-} in
    "$1") echo "$PROG: fault injected at step $1" >&2; return 1 ;;
    "$1:kill") kill -KILL $$ ;;
  esac
  return 0
}

# Copy what a transaction may change, then mark it begun.  paths: the
# managed paths plus extra ones (the predecessor's on --takeover).
txn_begin() {
  local p d
  rm -rf "$TXN.new"
  # directories this transaction may create, to remove again on restore
  {
    { managed_paths; printf '%s\n' "$@" "$VERS/x" "$TXN/x" "$R/var/log/ganeti/extstorage/x"; } |
      while read -r p; do
        d=$(dirname "$p")
        while [ "$d" != "$R" ] && [ "$d" != / ] && [ ! -e "$d" ]; do
          printf '%s\n' "$d"
          d=$(dirname "$d")
        done
      done
  } | LC_ALL=C sort -ru >"$WORK/created-dirs"
  mkdir -p "$TXN.new/files"
  cp "$WORK/created-dirs" "$TXN.new/created-dirs"
  { managed_paths; printf '%s\n' "$@"; } | sed '/^$/d' | LC_ALL=C sort -u >"$TXN.new/paths"
  while read -r p; do
    [ -e "$p" ] || [ -L "$p" ] || continue
    mkdir -p "$TXN.new/files$(dirname "$p")"
    cp -a "$p" "$TXN.new/files$p"
  done <"$TXN.new/paths"
  [ -d "$PRED" ] && cp -a "$PRED" "$TXN.new/predecessor"
  : >"$TXN.new/new-versions"
  sync_dir "$TXN.new"
  mv "$TXN.new" "$TXN"
}

sync_dir() { sync -f "$1" 2>/dev/null || sync; }

# A version directory made by this transaction (removed on restore).
txn_new_version() { printf '%s\n' "$1" >>"$TXN/new-versions"; }

# Put every path back as it was, remove what the transaction made.
txn_restore() {
  local p v d dirs
  [ -d "$TXN" ] || return 0
  while read -r p; do
    [ -n "$p" ] || continue
    rm -rf "$p"
    if [ -e "$TXN/files$p" ] || [ -L "$TXN/files$p" ]; then
      mkdir -p "$(dirname "$p")"
      cp -a "$TXN/files$p" "$p"
    fi
  done <"$TXN/paths"
  while read -r v; do
    [ -n "$v" ] && rm -rf "${VERS:?}/$v"
  done <"$TXN/new-versions"
  rm -rf "$VERS"/.trash-* "$VERS"/*.new
  rm -rf "$PRED"
  [ -d "$TXN/predecessor" ] && cp -a "$TXN/predecessor" "$PRED"
  dirs=$(cat "$TXN/created-dirs")
  rm -rf "$TXN"
  # the directories the transaction made (deepest first), if empty
  for d in $dirs; do rmdir "$d" 2>/dev/null || true; done
  return 0
}

txn_commit() {
  rm -rf "$VERS"/.trash-*
  rm -rf "$TXN"
}

# A transaction that failed in this process: restore, say so, exit 1.
on_exit() {
  local rc=$?
  trap - EXIT
  [ -n "${WORK:-}" ] && rm -rf "$WORK"
  if [ $rc -ne 0 ] && [ -d "$TXN" ] && [ "${IN_TXN:-0}" = 1 ]; then
    echo "$PROG: step '${STEP:-?}' failed: restoring the previous installation" >&2
    txn_restore
    echo "$PROG: previous installation restored" >&2
    rc=1
  fi
  exit $rc
}

# A transaction a crash cut off: put things back first.
recover() {
  if [ -d "$TXN" ]; then
    echo "$PROG: an earlier run was interrupted: restoring the installation it started from" >&2
    txn_restore
  fi
  rm -rf "$TXN.new"
}

# --- building blocks ----------------------------------------------------------

# Atomically make link name -> target (a new link renamed over the old).
relink() {
  ln -sfn "$1" "$2.new"
  mv -Tf "$2.new" "$2"
}

# The binary of a package (RPM or .deb) or the file itself, into $1.
extract_binary() {
  local src=$1 out=$2 x
  case $src in
    *.rpm)
      x=$WORK/pkg
      mkdir -p "$x"
      (cd "$x" && rpm2cpio "$src" | cpio -idm --quiet) || die "cannot unpack $src"
      ;;
    *.deb)
      x=$WORK/pkg
      dpkg-deb -x "$src" "$x" || die "cannot unpack $src"
      ;;
    *)
      cp "$src" "$out"
      return 0
      ;;
  esac
  [ -f "$x/usr/libexec/zfs-live/zfs-live" ] || die "$src holds no usr/libexec/zfs-live/zfs-live"
  cp "$x/usr/libexec/zfs-live/zfs-live" "$out"
  for u in zfs-live-nbd.service zfs-live-nbd.socket; do
    [ -f "$x/usr/lib/systemd/system/$u" ] && cp "$x/usr/lib/systemd/system/$u" "$WORK/$u"
  done
  return 0
}

# Where the unit files come from (for a bare binary; a package brings its
# own): $ZFS_LIVE_DEPLOY_UNITS, systemd/ beside this script (the Ansible
# role's copy), the source tree, or what the package installed.
units_source() {
  local here
  here=$(cd "$(dirname "$0")" && pwd)
  for d in ${ZFS_LIVE_DEPLOY_UNITS:-} "$here/systemd" "$here/../packaging/systemd" \
    "$here/../share/zfs-live/systemd" /usr/share/zfs-live/systemd; do
    [ -f "$d/zfs-live-nbd.service" ] && { echo "$d"; return 0; }
  done
  return 1
}

# Fill versions/<id> from the binary: links from `install-layout`.
stage_version() {
  local v=$1 bin=$2 d e dir u src
  d=$VERS/$v
  mkdir -p "$d.new"
  install -m 0755 "$bin" "$d.new/zfs-live"
  "$d.new/zfs-live" install-layout >"$WORK/layout" || die "staged binary: install-layout failed"
  while read -r e; do
    [ -n "$e" ] || continue
    dir=$(dirname "$e")
    mkdir -p "$d.new/xapi/$dir"
    ln -s ../../../zfs-live "$d.new/xapi/$e"
  done <"$WORK/layout"
  mkdir -p "$d.new/ganeti"
  for e in $("$d.new/zfs-live" install-layout --ganeti); do
    ln -s ../zfs-live "$d.new/ganeti/$e"
  done
  "$d.new/zfs-live" install-layout --ganeti-parameters >"$d.new/ganeti/parameters.list"
  chmod 0644 "$d.new/ganeti/parameters.list"
  mkdir -p "$d.new/systemd"
  for u in zfs-live-nbd.service zfs-live-nbd.socket; do
    if [ -f "$WORK/$u" ]; then
      src=$WORK/$u
    else
      src=$(units_source)/$u || die "no systemd unit $u to install"
    fi
    install -m 0644 "$src" "$d.new/systemd/$u"
  done
  echo "$v" >"$d.new/VERSION"
  mv -T "$d.new" "$d"
}

# Plugin.Query through a plugin directory, as xapi-storage-script runs it:
# exec of the link, --json, the parameters as JSON on stdin.
query() {
  local dir=$1 want=$2 out
  out=$(printf '{"dbg": "%s"}' "$PROG" | "$dir/Plugin.Query" --json 2>"$WORK/query.err") ||
    { echo "$PROG: $dir/Plugin.Query failed: $out $(cat "$WORK/query.err")" >&2; return 1; }
  case $out in
    *"\"plugin\": \"$want\""* | *"\"plugin\":\"$want\""*) return 0 ;;
  esac
  echo "$PROG: $dir/Plugin.Query answered something else: $out" >&2
  return 1
}

# The staged (or installed) version answers as a plugin and as a CLI.
verify_at() {
  local xapi=$1 bin=$2 t out
  for t in $SR_TYPES; do
    query "$xapi/volume/org.xen.xapi.storage.$t" "$t" || return 1
  done
  if [ -d "$xapi/datapath/zfs-live" ]; then
    query "$xapi/datapath/zfs-live" zfs-live || return 1
  fi
  # doctor: must run and report (a problem it finds on this host is its
  # report's business; a binary that cannot start is ours)
  out=$("$bin" doctor --json 2>"$WORK/doctor.err") || true
  case $out in
    "{"*) ;;
    *) echo "$PROG: $bin doctor --json gave no report: $(cat "$WORK/doctor.err")" >&2; return 1 ;;
  esac
  return 0
}

want_xapi() { [ "$SIDE" = both ] || [ "$SIDE" = xapi ]; }
want_ganeti() { [ "$SIDE" = both ] || [ "$SIDE" = ganeti ]; }

# The stable links: made once, they point through `current`.
make_links() {
  local t g rel
  mkdir -p "$R/usr/sbin"
  relink current/zfs-live "$LIB/zfs-live"
  relink ../libexec/zfs-live/zfs-live "$R/usr/sbin/zfs-live"
  if want_xapi; then
    mkdir -p "$XSS/volume" "$XSS/datapath"
    for t in $SR_TYPES; do
      rm -rf "$XSS/volume/org.xen.xapi.storage.$t" # a directory of install.sh's
      relink "../../zfs-live/current/xapi/volume/org.xen.xapi.storage.$t" \
        "$XSS/volume/org.xen.xapi.storage.$t"
    done
    rm -rf "$XSS/datapath/zfs-live"
    relink ../../zfs-live/current/xapi/datapath/zfs-live "$XSS/datapath/zfs-live"
  fi
  if want_ganeti; then
    mkdir -p "$R/var/log/ganeti/extstorage"
    for g in $GANETI_DIRS; do
      mkdir -p "$(dirname "$g")"
      rm -rf "$g"
      rel=$(realpath -m --relative-to="$(dirname "$g")" "$LIB/current/ganeti")
      relink "$rel" "$g"
    done
  fi
}

install_units() {
  local u
  mkdir -p "$UNITDIR"
  for u in zfs-live-nbd.service zfs-live-nbd.socket; do
    install -m 0644 "$VERS/$1/systemd/$u" "$UNITDIR/$u.new"
    mv -f "$UNITDIR/$u.new" "$UNITDIR/$u"
  done
}

# systemd only on the real root and only where it runs.
restart_services() {
  [ "$R" = "" ] || return 0
  [ -d /run/systemd/system ] || return 0
  systemctl daemon-reload || true
  systemctl try-restart zfs-live-nbd.service || true
  # xapi-storage-script sees plugin directories appear by inotify; a
  # restart makes it re-register those it had (new Plugin.Query answers)
  systemctl try-restart xapi-storage-script.service || true
}

current_version() { [ -L "$LIB/current" ] && basename "$(readlink "$LIB/current")"; }
previous_version() { [ -L "$LIB/previous" ] && basename "$(readlink "$LIB/previous")"; }

# Versions other than current and previous go (to .trash, emptied at commit).
prune_versions() {
  local cur prev v
  cur=$(current_version || true)
  prev=$(previous_version || true)
  for v in "$VERS"/*; do
    [ -d "$v" ] || continue
    v=$(basename "$v")
    [ "$v" = "$cur" ] || [ "$v" = "$prev" ] && continue
    mv -T "$VERS/$v" "$VERS/.trash-$v"
  done
}

# --- the predecessor's SRs ------------------------------------------------------

# Adopt each SR of the Python driver (a dataset <parent>/<uuid> marked
# xcp:sr=<uuid>) in place: mark it zfs-live:sr=<uuid> too, let our
# SR.create with that uuid make its state (it takes an existing marked
# dataset as it is), then take its volumes (children <sr>/<vdi-uuid>) with
# `zfs-live vol adopt --key <vdi-uuid>` in place (same name, our metadata
# added; volumes with snapshots or clones are left and named).  No data is
# copied or moved; the
# predecessor's own marks and files stay, so its rollback still works.
# Before any change: the predecessor's volumes that cannot be adopted.  xapi
# forgets, at the next SR scan, a VDI that SR.ls does not list: so these
# refuse the takeover unless --force.
check_adoptable() {
  local ds uuid bad=0 key
  list_predecessor_srs || return 1
  while IFS=$'\t' read -r ds uuid; do
    while read -r key; do
      adopt_volume "$ds" - "$(basename "$key")" check || bad=1
    done < <(sr_children "$ds")
  done <"$WORK/srs"
  if [ $bad = 1 ] && [ $FORCE = 0 ]; then
    echo "$PROG: refusing the takeover: xapi would forget the VDIs above at its next SR scan." >&2
    echo "  Delete or consolidate their snapshots first, or --force to leave them out." >&2
    exit 3
  fi
  return 0
}

# The predecessor's SRs in the pools (--pool, or every imported pool) into
# $WORK/srs: "<dataset><tab><uuid>" lines.
list_predecessor_srs() {
  local pools
  : >"$WORK/srs"
  if [ ${#POOLS[@]} -gt 0 ]; then pools=("${POOLS[@]}"); else
    command -v zpool >/dev/null 2>&1 || return 0
    mapfile -t pools < <(zpool list -H -o name 2>/dev/null)
  fi
  [ ${#pools[@]} -gt 0 ] || return 0
  command -v zfs >/dev/null 2>&1 || return 0
  zfs get -H -r -s local -o name,value xcp:sr "${pools[@]}" | grep -v @ >"$WORK/srs" ||
    { echo "$PROG: cannot list the predecessor's SRs" >&2; return 1; }
}

# The volumes and datasets directly under a dataset.
sr_children() {
  zfs list -H -r -t volume,filesystem -o name "$1" |
    awk -v p="$1/" 'index($0, p) == 1 && substr($0, length(p) + 1) !~ /\//'
}

adopt_srs() {
  local ds uuid parent mnt layout key
  list_predecessor_srs || return 1
  while IFS=$'\t' read -r ds uuid; do
    [ "$(basename "$ds")" = "$uuid" ] || {
      echo "$PROG: SR $uuid at $ds is not named <parent>/<uuid>: not adopted (adopt it by hand)" >&2
      continue
    }
    parent=$(dirname "$ds")
    zfs set "zfs-live:sr=$uuid" "$ds" || return 1
    if [ -n "$(zfs list -H -r -t volume -o name "$ds" 2>/dev/null)" ]; then layout=zvol; else layout=dataset; fi
    # our SR over it: made by SR.create with its uuid (which takes the
    # marked dataset as it is), unless an earlier takeover made it already
    printf '{"path": "%s", "layout": "%s", "sr_uuid": "%s"}' "$parent" "$layout" "$uuid" >"$WORK/sr.json"
    if ! mnt=$(sr_call SR.attach "$(printf '"configuration": %s' "$(cat "$WORK/sr.json")")" 2>/dev/null); then
      printf '{"path": "%s", "layout": "%s"}' "$parent" "$layout" >"$WORK/sr.json"
      sr_call SR.create "$(printf '"uuid": "%s", "name": "%s", "description": "%s", "configuration": %s' \
        "$uuid" "$uuid" "taken over from the Python driver" "$(cat "$WORK/sr.json")")" >/dev/null ||
        return 1
      mnt=$(sr_call SR.attach "$(printf '"configuration": %s' "$(cat "$WORK/sr.json")")") || return 1
    fi
    mnt=$(printf '%s' "$mnt" | sed 's/^"//; s/"$//')
    while read -r key; do
      key=$(basename "$key")
      adopt_volume "$ds" "$mnt" "$key" || return 1
    done < <(sr_children "$ds")
    say "adopted SR $uuid ($ds)"
  done <"$WORK/srs"
}

# A call of our zfs-live volume plugin, as xapi-storage-script makes it;
# its answer on stdout.  $2: the JSON members after dbg.
sr_call() {
  local out
  out=$(printf '{"dbg": "%s", %s}' "$PROG" "$2" |
    "$XSS/volume/org.xen.xapi.storage.zfs-live/$1" --json 2>"$WORK/call.err") ||
    { echo "$PROG: $1 failed: $out $(cat "$WORK/call.err")" >&2; return 1; }
  printf '%s\n' "$out"
}

# adopt_volume DS MNT KEY [check]: with check, only say (and return 1)
# whether the volume cannot be adopted.
adopt_volume() {
  local ds=$1 mnt=$2 key=$3 mode=${4:-do}
  case $key in
    *[!0-9a-f-]* | "") echo "$PROG: $ds/$key: not a volume of the driver: left as it is" >&2; return 0 ;;
  esac
  [ -z "$(zfs get -H -s local -o value zfs-live:meta "$ds/$key")" ] || return 0 # ours already
  if [ -n "$(zfs list -H -r -t snapshot -o name "$ds/$key" 2>/dev/null)" ] ||
    [ "$(zfs get -H -o value origin "$ds/$key")" != "-" ]; then
    echo "$PROG: $ds/$key has snapshots or is a clone: cannot be adopted (its data stays)" >&2
    [ "$mode" = check ] && return 1
    return 0
  fi
  [ "$mode" = check ] && return 0
  # in place: the volume keeps its name and its data, and gains our metadata
  "$R/usr/sbin/zfs-live" vol adopt --type zfs-live --key "$key" --name "$key" "$mnt" "$ds/$key" >/dev/null ||
    { echo "$PROG: adopting $ds/$key failed" >&2; return 1; }
}

# --- commands -------------------------------------------------------------------

cmd_install() {
  local src bin v sum ver found old prev owner
  [ $# -eq 1 ] || usage
  src=$(realpath "$1") || die "no such file: $1"
  [ -f "$src" ] || die "no such file: $1"
  owner=$(package_owner)
  if [ -n "$owner" ]; then
    echo "$PROG: refusing to install: zfs-live is installed here by the package $owner;" \
      "upgrade it with the package manager, or remove it first" >&2
    exit 3
  fi
  found=$(predecessor_paths)
  if [ -n "$found" ] && [ $TAKEOVER = 0 ]; then
    {
      echo "$PROG: refusing to install: the Python zfs-live driver (SR type zfs-live) is installed here:"
      printf '  %s\n' $found
      echo "Both would serve SR type zfs-live.  To replace it, adopting its SRs in place (no data"
      echo "is copied; its files are kept so that '$PROG rollback' restores it):"
      echo "  $PROG install --takeover $1"
      echo "Or remove it first with its own installer (installer.sh remove)."
    } >&2
    exit 3
  fi
  WORK=$(mktemp -d)
  trap on_exit EXIT
  bin=$WORK/zfs-live
  extract_binary "$src" "$bin"
  chmod 0755 "$bin"
  ver=$("$bin" version 2>/dev/null | awk '{print $2; exit}') || true
  [ -n "$ver" ] || die "$src does not run as zfs-live (zfs-live version failed)"
  sum=$(sha256sum "$bin" | cut -c1-12)
  v=$ver-$sum
  if [ "$(current_version || true)" = "$v" ] && [ $TAKEOVER = 0 ] && verify_installed quiet; then
    say "zfs-live $v is installed already"
    return 0
  fi

  if [ -n "$found" ] && [ $NO_ADOPT = 0 ]; then check_adoptable; fi
  IN_TXN=1
  step backup
  # shellcheck disable=SC2086
  txn_begin $found
  step stage
  mkdir -p "$VERS"
  if [ -d "$VERS/$v" ]; then
    # left by an earlier install (it is previous, or was pruned from view)
    cmp -s "$VERS/$v/zfs-live" "$bin" || die "$VERS/$v exists with another binary"
  else
    txn_new_version "$v"
    stage_version "$v" "$bin"
  fi
  step verify-staged
  verify_at "$VERS/$v/xapi" "$VERS/$v/zfs-live"
  step takeover
  if [ -n "$found" ]; then
    for p in $found; do
      case $p in
        */xe) [ -e "$p.real" ] && mv -f "$p.real" "$p" ;; # the real xe back
        */xe.real) ;;
        *) rm -rf "$p" ;;
      esac
    done
    rm -rf "$R/usr/libexec/zfs-live-plugins"
  fi
  step units
  install_units "$v"
  step links
  make_links
  step switch
  old=$(current_version || true)
  [ -n "$old" ] && [ "$old" != "$v" ] && relink "versions/$old" "$LIB/previous.new-prev"
  relink "versions/$v" "$LIB/current" # the switch: one rename
  if [ -L "$LIB/previous.new-prev" ]; then mv -Tf "$LIB/previous.new-prev" "$LIB/previous"; fi
  step verify-installed
  verify_installed
  step adopt-srs
  [ -n "$found" ] && [ $NO_ADOPT = 0 ] && adopt_srs
  step restart
  restart_services
  step prune
  prune_versions
  if [ -n "$found" ]; then
    # what we replaced, for rollback to the predecessor
    rm -rf "$PRED"
    mkdir -p "$PRED"
    cp -a "$TXN/files" "$PRED/files"
    cp "$TXN/created-dirs" "$PRED/created-dirs"
    printf '%s\n' $found >"$PRED/paths"
    managed_paths >>"$PRED/paths"
    rm -f "$LIB/previous"
  fi
  txn_commit
  IN_TXN=0
  prev=$(previous_version || true)
  local msg="installed zfs-live $v"
  [ -n "$prev" ] && msg="$msg (previous: $prev; $PROG rollback returns to it)"
  [ -n "$found" ] && msg="$msg; the Python driver is kept aside for $PROG rollback"
  say "$msg"
}

verify_installed() {
  [ -L "$LIB/current" ] || return 1
  if [ "${1:-}" = quiet ]; then
    verify_at "$XSS" "$R/usr/sbin/zfs-live" >/dev/null 2>&1
  elif want_xapi && [ -d "$XSS/volume" ]; then
    verify_at "$XSS" "$R/usr/sbin/zfs-live"
  fi
}

cmd_rollback() {
  local cur prev
  [ $# -eq 0 ] || usage
  WORK=$(mktemp -d)
  trap on_exit EXIT
  cur=$(current_version || true)
  prev=$(previous_version || true)
  if [ -z "$prev" ] && [ -d "$PRED" ]; then
    rollback_to_predecessor
    return
  fi
  [ -n "$prev" ] && [ -d "$VERS/$prev" ] || die "nothing to roll back to (no previous version)"
  IN_TXN=1
  step backup
  txn_begin
  step units
  install_units "$prev"
  step switch
  relink "versions/$cur" "$LIB/previous.new-prev"
  relink "versions/$prev" "$LIB/current"
  mv -Tf "$LIB/previous.new-prev" "$LIB/previous"
  step verify-installed
  verify_installed
  step restart
  restart_services
  txn_commit
  IN_TXN=0
  say "rolled back to zfs-live $prev (previous: $cur)"
}

# Put the predecessor's files back as they were before --takeover and
# remove ours.  Its SRs keep our marks beside its own (it ignores them).
rollback_to_predecessor() {
  local p
  IN_TXN=1
  step backup
  # shellcheck disable=SC2046
  txn_begin $(cat "$PRED/paths") "$VERS"
  step switch
  while read -r p; do
    rm -rf "$p"
    if [ -e "$PRED/files$p" ] || [ -L "$PRED/files$p" ]; then
      mkdir -p "$(dirname "$p")"
      cp -a "$PRED/files$p" "$p"
    fi
  done <"$PRED/paths"
  rm -rf "$VERS"
  rmdir "$LIB" 2>/dev/null || true
  step restart
  restart_services
  cp "$PRED/created-dirs" "$WORK/created-dirs"
  rm -rf "$PRED"
  txn_commit
  # the directories the takeover made, deepest first, if empty
  while read -r d; do rmdir "$d" 2>/dev/null || true; done <"$WORK/created-dirs"
  IN_TXN=0
  say "rolled back to the Python driver (its files restored; zfs-live removed)"
}

cmd_uninstall() {
  [ $# -eq 0 ] || usage
  WORK=$(mktemp -d)
  trap on_exit EXIT
  [ -d "$LIB" ] || [ -L "$R/usr/sbin/zfs-live" ] || { say "zfs-live is not installed"; return 0; }
  if [ "$R" = "" ] && [ -d /run/systemd/system ]; then
    systemctl stop zfs-live-nbd.socket zfs-live-nbd.service 2>/dev/null || true
  fi
  IN_TXN=1
  step backup
  txn_begin "$VERS"
  step remove
  while read -r p; do rm -rf "$p"; done < <(managed_paths)
  rm -rf "$LIB"
  step restart
  restart_services
  txn_commit
  rmdir "$STATE" "$R/var/lib/zfs-live" 2>/dev/null || true
  IN_TXN=0
  say "removed zfs-live (SR data, /etc/zfs-live and /run/zfs-live untouched)"
  [ -d "$PRED" ] && say "the Python driver's files from before --takeover are kept in $PRED"
  return 0
}

cmd_status() {
  local cur prev v found
  cur=$(current_version || true)
  prev=$(previous_version || true)
  echo "root:      ${ROOT}"
  echo "current:   ${cur:-none}"
  echo "previous:  ${prev:-none}"
  for v in "$VERS"/*; do [ -d "$v" ] && echo "version:   $(basename "$v")"; done
  [ -d "$TXN" ] && echo "interrupted transaction: the next install/rollback/uninstall restores it"
  [ -d "$PRED" ] && echo "predecessor backup: $PRED"
  found=$(predecessor_paths)
  [ -n "$found" ] && printf 'predecessor: %s\n' $found
  if [ -n "$cur" ]; then
    WORK=$(mktemp -d)
    if verify_installed quiet; then echo "plugins:   answering (Plugin.Query)"; else echo "plugins:   NOT answering"; rm -rf "$WORK"; exit 1; fi
    rm -rf "$WORK"
  fi
  return 0
}

# --- main -------------------------------------------------------------------------

main() {
  local cmd
  while [ $# -gt 0 ]; do
    case $1 in
      --root) [ $# -ge 2 ] || usage; ROOT=$2; shift 2 ;;
      --root=*) ROOT=${1#--root=}; shift ;;
      -h | --help) usage ;;
      -*) echo "$PROG: unknown option $1" >&2; usage ;;
      *) break ;;
    esac
  done
  [ $# -ge 1 ] || usage
  cmd=$1
  shift
  local args=()
  while [ $# -gt 0 ]; do
    case $1 in
      --takeover) TAKEOVER=1 ;;
      --no-adopt) NO_ADOPT=1 ;;
      --force) FORCE=1 ;;
      --pool) [ $# -ge 2 ] || usage; POOLS+=("$2"); shift ;;
      --pool=*) POOLS+=("${1#--pool=}") ;;
      --side=*) SIDE=${1#--side=} ;;
      --side) [ $# -ge 2 ] || usage; SIDE=$2; shift ;;
      --root) [ $# -ge 2 ] || usage; ROOT=$2; shift ;;
      -h | --help) usage ;;
      -*) echo "$PROG: unknown option $1" >&2; usage ;;
      *) args+=("$1") ;;
    esac
    shift
  done
  case $SIDE in xapi | ganeti | both) ;; *) usage ;; esac
  ROOT=$(realpath -m "$ROOT")
  set_paths
  [ "$cmd" = status ] || recover
  case $cmd in
    install) cmd_install "${args[@]}" ;;
    rollback) cmd_rollback "${args[@]}" ;;
    uninstall) cmd_uninstall "${args[@]}" ;;
    status) cmd_status "${args[@]}" ;;
    recover) ;; # done above
    *) usage ;;
  esac
}

main "$@"
