#!/bin/sh
# demo.sh: the main job on the embedded default — a file SR in a local
# directory — done the way an operator would, then the same SR seen through
# the XAPI SMAPIv3 plugin links.
#   scripts/demo.sh [BINARY]      (DEMO_DIR overrides /var/tmp/zfs-live-demo)
set -eu

clean=false
[ "${1:-}" = "--clean" ] && { clean=true; shift; }
zl=$(realpath "${1:-build/zfs-live}")
base=${DEMO_DIR:-/var/tmp/zfs-live-demo}
sr="$base/sr"
work="$base/work"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# Start clean: destroy what an earlier demo left (its volumes first).
if [ -d "$sr/.zfs-live" ]; then
  for k in $("$zl" vol list "$sr" --json | /usr/bin/python3 -c \
      'import json,sys; [print(v["key"]) for v in json.load(sys.stdin)]'); do
    "$zl" vol destroy "$sr" "$k"
  done
  "$zl" sr destroy "$sr"
fi
rm -rf "$work" "$base/root"
if $clean; then
  rmdir "$base" 2>/dev/null || true
  echo "demo removed"
  exit 0
fi
mkdir -p "$base" "$work"

say "1. Create a file SR in a local directory"
run "$zl" sr create --type file-live --path "$sr" --name "demo SR" \
  --description "made by make demo"
run "$zl" sr stat "$sr"

say "2. Create a 256 MiB thin volume"
key=$("$zl" vol create "$sr" --name disk0 --size 256M --json |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
run "$zl" vol stat "$sr" "$key"

say "3. Write data into it: a text block at 0 and 8 MiB of random data at 64 MiB"
printf 'zfs-live demo: hello from volume %s\n' "$key" > "$work/hello.txt"
head -c 8M /dev/urandom > "$work/random.bin"
run "$zl" vol write "$sr" "$key" --offset 0 < "$work/hello.txt"
run "$zl" vol write "$sr" "$key" --offset 64M < "$work/random.bin"
run "$zl" vol stat "$sr" "$key"

say "4. Snapshot it (read-only), then change the volume"
snap=$("$zl" vol snapshot "$sr" "$key" --json |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
printf 'this write happened after the snapshot\n' | "$zl" vol write "$sr" "$key" --offset 0
run "$zl" vol stat "$sr" "$snap"

say "5. Clone the snapshot (writable) and check its data byte for byte"
clone=$("$zl" vol clone "$sr" "$snap" --json |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
"$zl" vol read "$sr" "$clone" --offset 0 --length "$(wc -c < "$work/hello.txt")" \
  > "$work/clone-hello.txt"
"$zl" vol read "$sr" "$clone" --offset 64M --length 8M > "$work/clone-random.bin"
cmp "$work/hello.txt" "$work/clone-hello.txt"
cmp "$work/random.bin" "$work/clone-random.bin"
echo "clone $clone holds the snapshot's data: text block and 8 MiB random block identical"
printf 'volume now starts with: '
"$zl" vol read "$sr" "$key" --length 39
printf 'clone still starts with: '
"$zl" vol read "$sr" "$clone" --length 40 | head -1

say "6. List the SR"
run "$zl" sr ls "$sr"

say "7. The same SR through the XAPI SMAPIv3 plugin (as xapi-storage-script runs it)"
root="$base/root"
rm -rf "$root"
"$(dirname "$0")/install.sh" "$zl" "$root" /usr >/dev/null
plugin="$root/usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.file-live"
printf '$ echo {"dbg":"demo","sr":"%s"} | %s/SR.stat --json\n' "$sr" "$plugin"
printf '{"dbg":"demo","sr":"%s"}' "$sr" | "$plugin/SR.stat" --json 2>/dev/null
printf '$ echo {"dbg":"demo","sr":...,"key":"%s"} | Volume.stat --json\n' "$clone"
printf '{"dbg":"demo","sr":"%s","key":"%s"}' "$sr" "$clone" |
  "$plugin/Volume.stat" --json 2>/dev/null

say "8. Changed block tracking: what changed between two snapshots"
run "$zl" vol cbt-enable "$sr" "$key"
base_snap=$("$zl" vol snapshot "$sr" "$key" --json |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
printf 'a change at 1 MiB\n' | "$zl" vol write "$sr" "$key" --offset 1M
head -c 200000 /dev/urandom | "$zl" vol write "$sr" "$key" --offset 100M
next_snap=$("$zl" vol snapshot "$sr" "$key" --json |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
echo "wrote 18 bytes at 1 MiB and 200,000 bytes at 100 MiB between the two snapshots"
run "$zl" vol changed-blocks "$sr" "$base_snap" "$next_snap"

say "Done"
echo "SR directory:  $sr"
echo "volume:        $key (256 MiB, $(du -h "$sr/$key.img" | cut -f1) allocated)"
echo "snapshot:      $snap"
echo "clone:         $clone"
echo "Clean up with: make demo-clean"
