#!/bin/sh
# fuzz.sh: build the libFuzzer harness for the send stream parser with
# clang (outside the meson build, which stays gcc-only) and run it.
#
#   scripts/fuzz.sh [SECONDS] [extra libFuzzer options...]
#
# SECONDS defaults to 60 (FUZZ_TIME in the environment also works).  The
# working corpus is build-fuzz/corpus, seeded from the real zfs-fuse streams
# (tests/unit/data/*.zstream) and the hand-built ones (fuzz/seeds/).  Crash
# inputs land in build-fuzz/ (crash-*); add each as a regression case to
# fuzz/seeds/ and tests/unit/test-zfs-stream.c after fixing it.
# Exit status: libFuzzer's (0: no crash found).
set -eu

cd "$(dirname "$0")/.."
time=${1:-${FUZZ_TIME:-60}}
[ $# -gt 0 ] && shift
out=build-fuzz
CC=${CC_FUZZ:-clang}
mkdir -p "$out/corpus"

"$CC" -g -O1 -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Isrc -o "$out/fuzz-zstream" \
  fuzz/fuzz-zstream.c src/backend/zfs/stream.c src/util/error.c

cp tests/unit/data/*.zstream fuzz/seeds/*.zstream "$out/corpus/"
cd "$out"
exec ./fuzz-zstream -max_total_time="$time" -print_final_stats=1 -max_len=131072 \
  -timeout=10 -rss_limit_mb=2048 "$@" corpus
