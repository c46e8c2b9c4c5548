#!/bin/sh
# check-banned.sh: every C file of src/ and fuzz/ includes util/banned.h
# after its other includes (so the banned functions cannot be called).
# Exit status 1, naming the files, when one does not.
set -eu
cd "$(dirname "$0")/.."
bad=0
for f in $(git ls-files 'src/*.c' 'fuzz/*.c' 2>/dev/null || find src fuzz -name '*.c'); do
  last=$(grep -n '^#include' "$f" | tail -n 1 | cut -d: -f2-)
  case $last in
  *'"util/banned.h"'*) ;;
  *) echo "$f: util/banned.h is not its last include" >&2; bad=1 ;;
  esac
done
exit $bad
