#!/bin/bash
# make-streams.sh: regenerate the real zfs-fuse send streams that
# tests/unit/test-zfs-stream.c checks, and check them on the way.
#
#   tests/unit/data/make-streams.sh [ZSTREAM_RANGES]
#
# Needs root, a running zfs-fuse daemon (started if absent) and
# zstreamdump.  ZSTREAM_RANGES defaults to build-asan/zstream-ranges (built
# by `make unit`).  Makes its own pool zlstreamfix$$ on a sparse file and
# destroys only that pool.
#
# For each scenario NAME it writes:
#   NAME.zstream   the stream (zfs send -i @a @b, or as noted)
#   NAME.ranges    what the parser must report for the file's object, taken
#                  from `zstreamdump -v` (not from our parser): one line per
#                  WRITE / WRITE_BYREF ("W off len") and FREE ("F off len",
#                  len "end" for -1) of that object, and "F 0 end" for a
#                  FREEOBJECTS covering it, in stream order; header lines
#                  "# object N", "# fromguid 0x...", "# toguid 0x...".
# (compound-p-8k.zstream, a zfs send -p -i stream, has no .ranges: the
# parser must refuse it) and checks (1) that zstream-ranges prints exactly NAME.ranges, and (2) that
# the written ranges cover exactly the blocks the scenario wrote (recordsize
# granularity), and the freed ones the regions it zeroed/truncated.
#
# zfs-fuse (pool v23) streams have all-zero per-record checksums and a real
# END checksum; they have no maxblkid in OBJECT records, so the FREE that
# follows the file's OBJECT record (past its last block, to -1) is reported.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ranges_tool=${1:-$here/../../../build-asan/zstream-ranges}
[ -x "$ranges_tool" ] || { echo "make-streams: no $ranges_tool (run make unit)" >&2; exit 1; }
command -v zstreamdump >/dev/null || { echo "make-streams: no zstreamdump" >&2; exit 1; }

if ! zpool list >/dev/null 2>&1; then
  rm -f /run/zfs-fuse.pid
  zfs-fuse --pidfile /run/zfs-fuse.pid
  for _ in $(seq 50); do zpool list >/dev/null 2>&1 && break; sleep 0.1; done
fi

pool=zlstreamfix$$
tmp=$(mktemp -d /tmp/make-streams.XXXXXX)
cleanup() {
  # zfs-fuse may answer "pool is busy" right after the last file operation
  # (reference/zfs.md §4): retry, and say so if the pool stays.
  if zpool list "$pool" >/dev/null 2>&1; then
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      zpool destroy -f "$pool" 2>/dev/null && break
      sleep 1
    done
    zpool list "$pool" >/dev/null 2>&1 && echo "make-streams: could not destroy $pool" >&2
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
truncate -s 512M "$tmp/pool.img"
zpool create "$pool" "$tmp/pool.img" >/dev/null 2>&1

# Compressible data, so that the fixtures stay small.
pattern() { { yes "zfs-live $1 " || true; } | head -c "$2"; }

# zstreamdump -v of stdin -> the .ranges body for object $1
dump_ranges() {
  zstreamdump -v | python3 -c '
import re, sys
obj = int(sys.argv[1])
lines = sys.stdin.read().splitlines()
for i, l in enumerate(lines):
    m = re.match(r"(WRITE|WRITE_BYREF) object = (\d+)", l)
    if m and int(m.group(2)) == obj:
        n = re.match(r"offset = (\d+) length = (\d+)", lines[i + 1])
        print("W %s %s" % n.groups())
    m = re.match(r"FREE object = (\d+) offset = (\d+) length = (-?\d+)", l)
    if m and int(m.group(1)) == obj:
        ln = int(m.group(3))
        print("F %s %s" % (m.group(2), "end" if ln == -1 else ln))
    m = re.match(r"FREEOBJECTS firstobj = (\d+) numobjs = (\d+)", l)
    if m and int(m.group(1)) <= obj < int(m.group(1)) + int(m.group(2)):
        print("F 0 end")
' "$1"
}

# check_cover NAME RS WANT_W WANT_F: the union of the W lines must equal the
# union of WANT_W ("off:len ...") rounded out to RS; the union of F lines
# must include WANT_F ("off:len", len "end" allowed).
check_cover() {
  python3 - "$@" <<'EOF'
import sys
name, rs, want_w, want_f = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
END = 1 << 64
def union(rs_):
    out = []
    for a, b in sorted(rs_):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out
got_w, got_f = [], []
for l in open(name + ".ranges"):
    if l.startswith("#"):
        continue
    k, off, ln = l.split()
    off = int(off); end = END if ln == "end" else off + int(ln)
    (got_w if k == "W" else got_f).append((off, end))
ww = []
for t in want_w.split():
    off, ln = map(int, t.split(":"))
    ww.append((off // rs * rs, -(-(off + ln) // rs) * rs))
if union(got_w) != union(ww):
    sys.exit("%s: written %s, expected %s" % (name, union(got_w), union(ww)))
for t in want_f.split():
    off, ln = t.split(":")
    a = int(off); b = END if ln == "end" else a + int(ln)
    if not any(x <= a and b <= y for x, y in union(got_f)):
        sys.exit("%s: [%d, %d) not reported freed: %s" % (name, a, b, union(got_f)))
EOF
}

# scenario NAME RECORDSIZE COMPRESSION SEND_FLAGS WANT_W WANT_F SETUP CHANGE
# SETUP runs in the mounted dataset before @a, CHANGE between @a and @b.
# SEND_FLAGS "full" sends @b alone.
scenario() {
  local name=$1 rs=$2 comp=$3 flags=$4 want_w=$5 want_f=$6 setup=$7 change=$8
  local fs=$pool/$name
  zfs create -o recordsize="$rs" -o compression="$comp" "$fs"
  local mnt
  mnt=$(zfs get -H -o value mountpoint "$fs")
  (cd "$mnt" && eval "$setup")
  sync
  zfs snapshot "$fs@a"
  (cd "$mnt" && eval "$change")
  sync
  zfs snapshot "$fs@b"
  local obj
  obj=$(stat -c %i "$mnt/disk.img" 2>/dev/null || cat "$tmp/$name.obj")
  case "$flags" in
    full) zfs send "$fs@b" > "$here/$name.zstream" ;;
    *) zfs send $flags -i "$fs@a" "$fs@b" > "$here/$name.zstream" ;;
  esac
  local from to
  from=$(zfs get -Hp -o value guid "$fs@a")
  [ "$flags" = full ] && from=0
  to=$(zfs get -Hp -o value guid "$fs@b")
  {
    printf '# object %s\n# fromguid 0x%016x\n# toguid 0x%016x\n' "$obj" "$from" "$to"
    dump_ranges "$obj" < "$here/$name.zstream"
  } > "$here/$name.ranges"
  if ! diff <(grep -v '^#' "$here/$name.ranges") \
            <("$ranges_tool" "$obj" "$from" < "$here/$name.zstream" 2>/dev/null); then
    echo "make-streams: $name: zstream-ranges differs from zstreamdump" >&2
    exit 1
  fi
  (cd "$here" && check_cover "$name" "$(numfmt --from=iec "$rs")" "$want_w" "$want_f")
  printf '%-22s %6d bytes  %s\n' "$name" "$(stat -c %s "$here/$name.zstream")" \
    "$(grep -vc '^#' "$here/$name.ranges") ranges"
  zfs destroy -r "$fs" 2>/dev/null || { sleep 1; zfs destroy -r "$fs"; }
}

base='pattern base 262144 > disk.img'

# Two aligned 8K records rewritten.
scenario write-aligned-8k 8K off "" "65536:16384" "" "$base" \
  'pattern new 16384 | dd of=disk.img bs=16384 seek=4 conv=notrunc status=none'

# Unaligned writes inside one record, across two records, the last byte;
# plus writes to another file (object 6) that must be filtered out.
scenario write-unaligned-8k 8K off "" "5000:3000 20000:10000 262143:1" "" \
  "$base; pattern other 65536 > other.img" \
  'pattern u1 3000 | dd of=disk.img bs=1 seek=5000 conv=notrunc status=none
   pattern u2 10000 | dd of=disk.img bs=1 seek=20000 conv=notrunc status=none
   printf x | dd of=disk.img bs=1 seek=262143 conv=notrunc status=none
   pattern o2 8192 | dd of=other.img bs=8192 seek=3 conv=notrunc status=none'

# Zeros written without compression: a WRITE like any other.
scenario write-zeros-8k 8K off "" "32768:8192" "" "$base" \
  'dd if=/dev/zero of=disk.img bs=8192 seek=4 count=1 conv=notrunc status=none'

# Zeros written with compression on become holes: FREE (zfs-fuse has no
# fallocate --punch-hole, so this is its trim).
scenario zero-trim-lzjb-8k 8K on "" "" "40960:16384" "$base" \
  'dd if=/dev/zero of=disk.img bs=16384 seek=40960 oflag=seek_bytes count=1 conv=notrunc status=none'

# Growth by truncate: no data written; the new space reads as zeros.
scenario grow-8k 8K off "" "" "262144:131072" "$base" 'truncate -s 393216 disk.img'

# Shrink by truncate: everything past the new end is freed.
scenario shrink-8k 8K off "" "" "131072:end" "$base" 'truncate -s 131072 disk.img'

# 64K records: a 4K write dirties one whole 64K record.
scenario write-64k 64K off "" "204800:4096" "" 'pattern base 524288 > disk.img' \
  'pattern w64 4096 | dd of=disk.img bs=4096 seek=50 conv=notrunc status=none'

# Deduplicated stream (zfs send -D): the second copy of a block is WRITE_BYREF.
scenario dedup-8k 8K off "-D" "16384:8192 40960:8192" "" "$base" \
  'pattern dd 8192 > blk; dd if=blk of=disk.img bs=8192 seek=2 conv=notrunc status=none
   dd if=blk of=disk.img bs=8192 seek=5 conv=notrunc status=none; rm blk'

# The file deleted: FREEOBJECTS covers its object.
scenario delete-8k 8K off "" "" "0:end" "$base; stat -c %i disk.img > $tmp/delete-8k.obj" \
  'rm disk.img'

# A full stream (no -i): every block of the 32K file is written.
scenario full-8k 8K off full "0:32768" "" 'pattern base 32768 > disk.img' ':'

# A compound stream (zfs send -p -i: properties make a wrapper stream),
# which the parser must refuse.
fs=$pool/compound
zfs create -o recordsize=8K "$fs"
mnt=$(zfs get -H -o value mountpoint "$fs")
pattern base 16384 > "$mnt/disk.img"
sync
zfs snapshot "$fs@a"
pattern new 8192 | dd of="$mnt/disk.img" bs=8192 conv=notrunc status=none
sync
zfs snapshot "$fs@b"
zfs send -p -i "$fs@a" "$fs@b" > "$here/compound-p-8k.zstream"
out=$("$ranges_tool" 5 < "$here/compound-p-8k.zstream" 2>&1 || true)
if [[ $out == *"compound stream"* ]]; then
  printf '%-22s %6d bytes  refused\n' compound-p-8k "$(stat -c %s "$here/compound-p-8k.zstream")"
else
  echo "make-streams: compound-p-8k: not refused as a compound stream" >&2
  exit 1
fi
