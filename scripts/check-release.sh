#!/bin/sh
# check-release.sh BINARY: the release binary depends on nothing but the
# kernel: no program interpreter, no dynamic section, so no shared library
# and no glibc symbol version to find on the host.  Prints what it found;
# exit status 1 if the binary is dynamic in any way.
set -eu
bin=${1:?usage: check-release.sh BINARY}
bad=0
if readelf -lW "$bin" | grep -q 'INTERP'; then
  echo "check-release: $bin asks for a program interpreter:" >&2
  readelf -lW "$bin" | grep -A1 INTERP >&2
  bad=1
fi
if readelf -dW "$bin" | grep -q 'NEEDED'; then
  echo "check-release: $bin needs shared libraries:" >&2
  readelf -dW "$bin" | grep NEEDED >&2
  bad=1
fi
if readelf -VW "$bin" | grep -q 'GLIBC_'; then
  echo "check-release: $bin has glibc symbol versions:" >&2
  readelf -VW "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV >&2
  bad=1
fi
[ $bad -eq 0 ] || exit 1
echo "check-release: $bin: static, no interpreter, no shared library ($(stat -c %s "$bin") bytes)"
