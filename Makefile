# zfs-live: the front door.  Meson and Ninja do the building.
#
#   make            optimised build/zfs-live (release with debug info, -Werror)
#   make release    build-release/zfs-live: one static binary, no runtime
#                   dependency beyond the kernel (glibc static, OpenSSL TLS)
#   make check      install test packages, ASan+UBSan build, every test
#   make demo       the main job on the embedded default (a file SR)
#   make install    DESTDIR=... PREFIX=/usr
#   make rpm        XCP-ng 8.3 RPMs of the release binary into $(PKGOUT)/rpm
#   make deb        Debian packages (Ganeti nodes) into $(PKGOUT)/deb
#   make units      systemd-analyze security exposure of the units (<= 4.0)
#   make bench      benchmarks against the named peers (bench/)
#   make fuzz       libFuzzer: send stream parser, SMAPIv3 requests, Ganeti env
#                   (clang; FUZZ_TIME=60 seconds per harness, run in turn)

PREFIX ?= /usr
DESTDIR ?=
BUILD ?= build
ASAN ?= build-asan
RELEASE ?= build-release
PYTEST ?= /usr/bin/python3 -m pytest

.PHONY: all check release format format-check units rpm deb unit graph integration integration-k419 integration-emptyroot demo demo-clean install bench fuzz clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	scripts/deps.sh build
	meson setup $(BUILD) --buildtype=debugoptimized -Dwerror=true --prefix=$(PREFIX)

$(ASAN)/build.ninja:
	scripts/deps.sh test
	meson setup $(ASAN) --buildtype=debug -Dwerror=true -Db_sanitize=address,undefined \
	  -Db_lundef=false -Dtests=enabled

check:
	scripts/deps.sh test
	$(MAKE) format-check units unit release integration integration-k419 integration-emptyroot

# The self-contained binary: glibc linked statically (no NSS, no dlopen
# needed), OpenSSL for TLS (GnuTLS does not link statically on Debian), the
# zfs command for ZFS (a static binary does not load libzfs_core).
# check-release.sh fails if it gains any dynamic dependency.
$(RELEASE)/build.ninja:
	scripts/deps.sh build
	meson setup $(RELEASE) --buildtype=release -Dwerror=true -Dtests=disabled \
	  -Dstatic=true -Dtls=openssl

release: $(RELEASE)/build.ninja
	ninja -C $(RELEASE)
	scripts/check-release.sh $(RELEASE)/zfs-live

# systemd-analyze security --offline: each service's exposure, <= 4.0
units:
	scripts/check-units.sh

# Packages, built from a copy of the tree (git archive, or the files
# themselves outside git) in a temporary directory: nothing is written into
# the source tree.  The RPM carries the static release binary (XCP-ng 8.3's
# glibc 2.17); the .debs are built from source by dpkg-buildpackage.
PKGOUT ?= $(CURDIR)/build-pkg
rpm: release
	scripts/build-packages.sh rpm $(RELEASE)/zfs-live $(PKGOUT)/rpm

deb:
	scripts/build-packages.sh deb - $(PKGOUT)/deb

SOURCES = $(shell git ls-files 'src/*.[ch]' 'tests/unit/*.c' 'tests/tools/*.c' 'fuzz/*.c' 2>/dev/null || \
            find src tests/unit tests/tools fuzz -name '*.[ch]')

format:
	clang-format -i $(SOURCES)

# .clang-format is the style; this keeps it enforced.
format-check:
	scripts/check-banned.sh
	clang-format --dry-run --Werror $(SOURCES)

unit: $(ASAN)/build.ninja
	ninja -C $(ASAN)
	meson test -C $(ASAN) --print-errorlogs
	$(MAKE) graph

# Layering: no cycle between folders or inside one, no arrow up the layers,
# in the include graph and in the call graph of the objects (nm).
graph: $(ASAN)/build.ninja
	ninja -C $(ASAN)
	/usr/bin/python3 scripts/include-graph.py
	/usr/bin/python3 scripts/include-graph.py --objects $(ASAN)/libzl.a.p

# The integration tests drive the *installed* plugin links of the ASan build.
integration: $(ASAN)/build.ninja
	ninja -C $(ASAN)
	rm -rf $(ASAN)/root
	scripts/install.sh $(ASAN)/zfs-live $(CURDIR)/$(ASAN)/root /usr
	ZFS_LIVE_ROOT=$(CURDIR)/$(ASAN)/root ZFS_LIVE_K419_EXEC=$(CURDIR)/$(ASAN)/k419-exec \
	  ZFS_LIVE_RELEASE=$(CURDIR)/$(RELEASE)/zfs-live \
	  $(PYTEST) -q tests/integration

# The tests of the NBD server, the datapath and file SRs again under the
# Linux 4.19 system call profile (XCP-ng 8.3's dom0; tests/tools/k419-exec.c):
# the install root's binary is the launcher, which runs the real one
# (real/zfs-live beside it) under the filter, so every plugin link, CLI call and the
# NBD server they start take the old kernel's paths.
K419_TESTS = test_k419.py test_nbd.py test_nbd_lifecycle.py test_nbd_robust.py \
  test_nbd_tls.py test_datapath.py test_sr.py test_volume.py test_xapi_sequences.py \
  test_filesystems.py test_handoff.py test_shared_zfs.py
integration-k419: $(ASAN)/build.ninja
	ninja -C $(ASAN)
	@test -x $(ASAN)/k419-exec || { echo "integration-k419: no $(ASAN)/k419-exec" \
	  "(libseccomp-dev: scripts/deps.sh test, then meson setup --reconfigure)" >&2; exit 1; }
	rm -rf $(ASAN)/root-k419
	scripts/install.sh $(ASAN)/zfs-live $(CURDIR)/$(ASAN)/root-k419 /usr
	install -d $(ASAN)/root-k419/usr/libexec/zfs-live/real
	mv $(ASAN)/root-k419/usr/libexec/zfs-live/zfs-live $(ASAN)/root-k419/usr/libexec/zfs-live/real/
	install -m 0755 $(ASAN)/k419-exec $(ASAN)/root-k419/usr/libexec/zfs-live/zfs-live
	ZFS_LIVE_ROOT=$(CURDIR)/$(ASAN)/root-k419 ZFS_LIVE_K419=1 \
	  ZFS_LIVE_K419_EXEC=$(CURDIR)/$(ASAN)/k419-exec \
	  $(PYTEST) -q $(addprefix tests/integration/,$(K419_TESTS))

# The file-SR, datapath, CBT and NBD tests again with the release binary
# in an empty root: the install root's binary is tests/tools/emptyroot-exec,
# which runs the release binary (real/zfs-live) chrooted into a tmpfs that
# holds /dev, /proc, /sys, /tmp, /var/tmp, /run, /etc/machine-id and the
# install root -- no /lib, /usr/lib or /etc.  Left out: the ZFS cases (the
# zfs command the binary runs is the host's own, a dynamic program no empty
# root holds), /usr/lib/x as a refused system directory (the root has no
# /usr/lib to refuse) and the server's open files as /proc shows them from
# outside the root (they carry the root's mount point).
# test_cbt.py comes first: it mounts filesystems under /tmp, and an NBD
# server already running in its own namespace would not see them (this
# host's / is a private mount, so later mounts do not propagate into it).
EMPTYROOT_TESTS = test_cbt.py test_sr.py test_volume.py test_xapi_sequences.py \
  test_protocol.py test_nbd.py test_nbd_lifecycle.py test_nbd_robust.py test_nbd_tls.py \
  test_datapath.py test_filesystems.py test_handoff.py
EMPTYROOT_SKIP = not zfs and not test_system_directories_are_refused \
  and not test_attach_starts_the_server_detached \
  and not test_stale_comparison_snapshot_is_collected
integration-emptyroot: release $(ASAN)/build.ninja
	ninja -C $(ASAN)
	rm -rf $(ASAN)/root-empty
	scripts/install.sh $(RELEASE)/zfs-live $(CURDIR)/$(ASAN)/root-empty /usr
	install -d $(ASAN)/root-empty/usr/libexec/zfs-live/real
	mv $(ASAN)/root-empty/usr/libexec/zfs-live/zfs-live $(ASAN)/root-empty/usr/libexec/zfs-live/real/
	install -m 0755 $(ASAN)/emptyroot-exec $(ASAN)/root-empty/usr/libexec/zfs-live/zfs-live
	ZFS_LIVE_ROOT=$(CURDIR)/$(ASAN)/root-empty $(PYTEST) -q -k "$(EMPTYROOT_SKIP)" \
	  $(addprefix tests/integration/,$(EMPTYROOT_TESTS))

demo: all
	scripts/demo.sh $(BUILD)/zfs-live

demo-clean: all
	scripts/demo.sh --clean $(BUILD)/zfs-live

install: all
	scripts/install.sh $(BUILD)/zfs-live "$(DESTDIR)" $(PREFIX)

bench: all
	scripts/deps.sh bench
	rm -rf $(BUILD)/root
	scripts/install.sh $(BUILD)/zfs-live $(CURDIR)/$(BUILD)/root /usr
	/usr/bin/python3 bench/smapi.py --root $(CURDIR)/$(BUILD)/root
	scripts/zpool-scratch.sh /usr/bin/python3 bench/zfs.py --root $(CURDIR)/$(BUILD)/root
	/usr/bin/python3 bench/nbd.py --zfs-live $(BUILD)/zfs-live
	/usr/bin/python3 bench/mirror.py --root $(CURDIR)/$(BUILD)/root
	/usr/bin/python3 bench/handoff.py --root $(CURDIR)/$(BUILD)/root
	scripts/zpool-scratch.sh /usr/bin/python3 bench/cbt.py --root $(CURDIR)/$(BUILD)/root
	/usr/bin/python3 bench/copy.py --zfs-live $(BUILD)/zfs-live

FUZZ_TIME ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_TIME)

clean:
	rm -rf $(BUILD) $(ASAN) build-fuzz build-pkg
