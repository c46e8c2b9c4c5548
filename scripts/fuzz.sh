#!/bin/sh
# fuzz.sh: build the libFuzzer harnesses with clang (outside the gcc build;
# the library they drive is built by meson into build-fuzz/lib with clang,
# ASan, UBSan and coverage instrumentation) and run each in turn.
#
#   scripts/fuzz.sh [SECONDS] [HARNESS...] [-- extra libFuzzer options]
#
# SECONDS (default 60, or FUZZ_TIME) is the time of EACH harness, one after
# the other (make fuzz FUZZ_TIME=600 takes 30 minutes for the three).  The
# harnesses (default: all):
#   zstream     the ZFS send stream parser (fuzz/fuzz-zstream.c)
#   smapi       SMAPIv3 requests from the bytes on stdin into the core, on a
#               real file SR (fuzz/fuzz-smapi.c)
#   ganeti-env  the Ganeti ExtStorage environment (fuzz/fuzz-ganeti-env.c)
# Each keeps a working corpus in build-fuzz/corpus-<harness>, seeded from
# fuzz/seeds/<harness>/ (zstream also from tests/unit/data/*.zstream).
# Crash inputs land in build-fuzz/<harness>-crash-*; after fixing one, add it
# to fuzz/seeds/<harness>/ (the unit tests replay the seeds) with a test.
# Exit status: 0 when no harness found anything, else 1.
set -eu

cd "$(dirname "$0")/.."
root=$PWD
time=${FUZZ_TIME:-60}
case "${1:-}" in [0-9]*) time=$1; shift ;; esac
harnesses=
while [ $# -gt 0 ] && [ "$1" != -- ]; do harnesses="$harnesses $1"; shift; done
[ "${1:-}" = -- ] && shift
harnesses=${harnesses:-zstream smapi ganeti-env}
out=$root/build-fuzz
CC=${CC_FUZZ:-clang}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-g -O1 -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror $SAN"
mkdir -p "$out"

# the code under test: libzl with coverage instrumentation
if [ ! -f "$out/lib/build.ninja" ]; then
  CC=$CC meson setup "$out/lib" --buildtype=debug -Doptimization=1 -Dwerror=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Dtests=disabled \
    -Dc_args="-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined" >/dev/null
fi
ninja -C "$out/lib" libzl.a >/dev/null
LIBS="$out/lib/libzl.a -ljansson -lnettle -lgnutls -luring -lpthread -ldl"

build() { # name, sources...
  name=$1; shift
  "$CC" $CFLAGS -fsanitize=fuzzer -Isrc -I. -DZFS_LIVE_VERSION='"fuzz"' \
    -o "$out/fuzz-$name" "$@" $LIBS
}
build zstream fuzz/fuzz-zstream.c
build smapi fuzz/fuzz-smapi.c fuzz/smapi-check.c fuzz/smapi-oracle.c \
  fuzz/smapi-template.c fuzz/sandbox.c
build ganeti-env fuzz/fuzz-ganeti-env.c

# The SMAPIv3 harness makes its sandbox (a file SR, restored before every
# input) under TMPDIR, in a directory of this run's own (an aborted harness
# leaves its sandbox), on a private tmpfs where it may mount one (root):
# fsync and the restores cost nothing there, three times the executions.
export TMPDIR="$out/tmp.$$" FUZZ_SANDBOX_TMPFS=1
mkdir -p "$TMPDIR"
trap 'rm -rf "$TMPDIR"' EXIT INT TERM

status=0
for h in $harnesses; do
  corpus=$out/corpus-$h
  mkdir -p "$corpus"
  cp "$root"/fuzz/seeds/"$h"/* "$corpus/"
  [ "$h" = zstream ] && cp "$root"/tests/unit/data/*.zstream "$corpus/"
  case $h in
  zstream) opts="-max_len=131072" ;;
  smapi) opts="-max_len=8192 -dict=$root/fuzz/smapi.dict" ;;
  ganeti-env) opts="-max_len=4096 -dict=$root/fuzz/ganeti-env.dict" ;;
  *) echo "fuzz.sh: unknown harness $h" >&2; exit 2 ;;
  esac
  echo "== fuzz-$h: $time s"
  # shellcheck disable=SC2086
  if ! "$out/fuzz-$h" -max_total_time="$time" -print_final_stats=1 -timeout=20 \
      -rss_limit_mb=2048 -artifact_prefix="$out/$h-" $opts "$@" "$corpus" \
      2>"$out/fuzz-$h.log"; then
    status=1
    tail -n 60 "$out/fuzz-$h.log" >&2
    echo "== fuzz-$h FOUND A CRASH: $out/$h-crash-* (log: $out/fuzz-$h.log)" >&2
  else
    grep -E '^(#[0-9]+.*DONE|stat::)' "$out/fuzz-$h.log" || true
  fi
done
exit $status
