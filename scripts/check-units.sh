#!/bin/sh
# check-units.sh [UNIT...]: the exposure figure `systemd-analyze security`
# gives each service unit in packaging/systemd (read offline, without
# loading it: systemd >= 250), printed; exit status 1 if one is above
# MAX (4.0).  A .socket unit runs no process of its own: it is named, not
# rated (systemd-analyze rates it as if it were a service with no
# settings).
set -eu
MAX=${MAX:-4.0}
top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || set -- "$top"/packaging/systemd/*.service "$top"/packaging/systemd/*.socket
bad=0
# every directive known to this systemd (verify warns on unknown or
# invalid ones; a missing /usr/sbin/zfs-live or man page is expected here)
out=$(systemd-analyze verify "$@" 2>&1 || true)
if printf '%s\n' "$out" | grep -Ei 'unknown|invalid|failed to parse|ignoring'; then
  echo "check-units: systemd-analyze verify complains (above)" >&2
  bad=1
fi
for unit in "$@"; do
  name=$(basename "$unit")
  case $name in
    *.service) ;;
    *) echo "check-units: $name: runs no process, not rated"; continue ;;
  esac
  out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1) || {
    echo "check-units: systemd-analyze security failed on $name:" >&2
    echo "$out" >&2
    exit 1
  }
  level=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  [ -n "$level" ] || { echo "check-units: no exposure figure for $name:" >&2; echo "$out" >&2; exit 1; }
  verdict=ok
  if awk -v l="$level" -v m="$MAX" 'BEGIN { exit !(l > m) }'; then
    verdict="ABOVE $MAX"
    bad=1
  fi
  echo "check-units: $name: exposure $level ($verdict)"
done
exit $bad
