# oom_ext: build, test, install.
#
#   make                      build the static oom-ext binary (cargo)
#   make check                the whole test suite (tests/check)
#   make install              install everything (DESTDIR, PREFIX honoured)
#   make dkms-install         register, build and install the module with DKMS
#   make uninstall            remove what install put in place
#
# Paths: PREFIX (default /usr) moves the binary, units, man page and the
# dracut/mkinitcpio files. The DKMS source tree and the initramfs-tools
# files stay where DKMS and initramfs-tools look for them.

KMOD_DIR     ?= kmod
VERSION      := $(or $(shell sed -n 's/^PACKAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' $(KMOD_DIR)/dkms.conf 2>/dev/null),0.1.0)

PREFIX       ?= /usr
SBINDIR      ?= $(PREFIX)/sbin
LIBDIR       ?= $(PREFIX)/lib
MANDIR       ?= $(PREFIX)/share/man
SYSCONFDIR   ?= /etc
UNITDIR      ?= $(LIBDIR)/systemd/system
DRACUTDIR    ?= $(LIBDIR)/dracut/modules.d/90oom-ext
INITCPIODIR  ?= $(LIBDIR)/initcpio
PKGLIBDIR    ?= $(LIBDIR)/oom-ext
INITRAMFSTOOLSDIR ?= /usr/share/initramfs-tools
DKMSSRCDIR   ?= /usr/src/oom_ext-$(VERSION)
# yes: `make install` enables the units (systemctl --root=$(DESTDIR)/).
# Packagers set SYSTEMD_ENABLE=no and ship presets instead.
SYSTEMD_ENABLE ?= yes

CARGO        ?= cargo
# What `make` builds, whatever the target: a copy of cargo's output.
BIN          := target/oom-ext
# STD=source: the x86_64-unknown-linux-musl target with Rust's std rebuilt
# from source (no backtrace symbolizer, sized for space): a 0.47 MB
# static-pie binary whose whole image the guard can lock in under 1 MiB of
# RAM (docs/benchmarks.md, "Binary size"). It needs Debian 12's rustc-web,
# cargo-web and rust-web-src of one version (the std source that compiler
# was built from), musl-dev (libc.a and start files), and RUSTC_BOOTSTRAP=1
# for cargo's unstable -Z build-std. tools/setup installs them all.
# STD=prebuilt: x86_64-unknown-linux-gnu with static glibc and the
# toolchain's std as it is (any stable Rust): 1.25 MB.
# Default: source when all of it is there.
STD_RUSTC    ?= /usr/bin/rustc
STD_CARGO    ?= /usr/bin/cargo
MUSL_LIB     ?= /usr/lib/x86_64-linux-musl
STD          ?= $(shell a=$$(dpkg-query -W -f '$${Version}' rustc-web 2>/dev/null); \
                  b=$$(dpkg-query -W -f '$${Version}' rust-web-src 2>/dev/null); \
                  c=$$(dpkg-query -W -f '$${Version}' cargo-web 2>/dev/null); \
                  [ -n "$$a" ] && [ "$$a" = "$$b" ] && [ "$$a" = "$$c" ] && \
                  [ -f $(MUSL_LIB)/libc.a ] && [ -f $(MUSL_LIB)/rcrt1.o ] && echo source || echo prebuilt)
ifeq ($(STD),source)
TARGET        = x86_64-unknown-linux-musl
# Linked by gcc against musl's own start files and libc.a (Debian has no
# self-contained musl kit for rustc, and musl-gcc cannot link static-pie).
# std names libunwind for musl; with panic=abort nothing unwinds, and
# tools/musl/unwind-stub.c gives std's backtrace printer an empty stack.
MUSL_FLAGS    = -C link-self-contained=no -C linker=$(CC) -C force-unwind-tables=no \
                -L native=$(MUSL_LIB) -L native=target/musl-link \
                -C link-arg=-nostartfiles -Z pre-link-args=$(MUSL_LIB)/rcrt1.o \
                -Z pre-link-args=$(MUSL_LIB)/crti.o -C link-arg=$(MUSL_LIB)/crtn.o
STD_DEPS      = target/musl-link/libunwind.a
BUILD_BIN     = env RUSTC=$(STD_RUSTC) RUSTC_BOOTSTRAP=1 RUSTFLAGS="$(MUSL_FLAGS)" \
                    $(STD_CARGO) build --release --target $(TARGET) \
                    -Z build-std=std,panic_abort -Z build-std-features=optimize_for_size
else
TARGET        = x86_64-unknown-linux-gnu
STD_DEPS      =
BUILD_BIN     = $(CARGO) build --release
endif
# Build, then copy cargo's output to $(BIN).
BUILD         = $(BUILD_BIN) && cp -f target/$(TARGET)/release/oom-ext $(BIN)
UNITS        := oom-ext-guard.service oom-ext-report.service oom-ext-on-hang.service
# The module source DKMS builds from, and dkms.conf's POST_INSTALL script.
KMOD_FILES    = $(filter-out $(KMOD_DIR)/test_knobs.c,$(wildcard $(KMOD_DIR)/*.c $(KMOD_DIR)/*.h)) $(KMOD_DIR)/Kbuild $(KMOD_DIR)/Makefile $(KMOD_DIR)/dkms.conf
KMOD_SCRIPTS  = $(wildcard $(KMOD_DIR)/dkms-post-install.sh)

INSTALL      ?= install
SUBST         = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@PKGLIBDIR@|$(PKGLIBDIR)|g' \
                    -e 's|@VERSION@|$(VERSION)|g'

# Kernel for dkms-install: the running one unless KVER is given.
KVER         ?= $(shell uname -r)

.PHONY: all check bench install install-files install-enable uninstall \
        dkms-install dkms-uninstall clean

all: $(STD_DEPS)
	@echo "make: building oom-ext with STD=$(STD) ($(TARGET))"
	$(BUILD)

# install only builds when the binary is missing: `make && sudo make install`
# must not run cargo as root.
$(BIN): | $(STD_DEPS)
	$(BUILD)

target/musl-link/libunwind.a: tools/musl/unwind-stub.c
	mkdir -p target/musl-link
	$(CC) -Os -fPIE -fno-stack-protector -c -o target/musl-link/unwind-stub.o $<
	rm -f $@ && $(AR) rc $@ target/musl-link/unwind-stub.o

check:
	tests/check

# The benchmark against the peers (docs/stall-benchmark.md): every guard and
# workload, 3 runs each, on both kernels, two guests at a time: 378 boots,
# about 16 h on a 2-core TCG host. Smaller: make bench BENCH_ARGS="--reps 1 ...".
BENCH_ARGS ?= --reps 3 --kernels 6.1,6.12 --jobs 2
bench:
	tests/vm/bench-stall $(BENCH_ARGS)

install: install-files
ifeq ($(SYSTEMD_ENABLE),yes)
install: install-enable
endif

install-files: $(BIN)
	$(INSTALL) -D -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/oom-ext
	@# Module source for DKMS.
	$(INSTALL) -d $(DESTDIR)$(DKMSSRCDIR)
	$(INSTALL) -m 0644 $(KMOD_FILES) $(DESTDIR)$(DKMSSRCDIR)/
	$(if $(KMOD_SCRIPTS),$(INSTALL) -m 0755 $(KMOD_SCRIPTS) $(DESTDIR)$(DKMSSRCDIR)/)
	@# systemd units, the binary path substituted.
	$(INSTALL) -d $(DESTDIR)$(UNITDIR)
	for unit in $(UNITS); do \
		$(SUBST) systemd/$$unit.in > $(DESTDIR)$(UNITDIR)/$$unit && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$unit || exit 1; \
	done
	@# The initrd unit, shared by dracut (copy in its module dir) and mkinitcpio.
	$(INSTALL) -D -m 0644 systemd/oom-ext-initrd.service $(DESTDIR)$(PKGLIBDIR)/oom-ext-initrd.service
	@# dracut module.
	$(INSTALL) -d $(DESTDIR)$(DRACUTDIR)
	$(SUBST) dracut/90oom-ext/module-setup.sh > $(DESTDIR)$(DRACUTDIR)/module-setup.sh
	chmod 0755 $(DESTDIR)$(DRACUTDIR)/module-setup.sh
	$(INSTALL) -m 0755 dracut/90oom-ext/oom-ext-init.sh $(DESTDIR)$(DRACUTDIR)/oom-ext-init.sh
	$(INSTALL) -m 0644 systemd/oom-ext-initrd.service $(DESTDIR)$(DRACUTDIR)/oom-ext-initrd.service
	@# initramfs-tools hook and init-top script.
	$(INSTALL) -d $(DESTDIR)$(INITRAMFSTOOLSDIR)/hooks $(DESTDIR)$(INITRAMFSTOOLSDIR)/scripts/init-top
	$(SUBST) initramfs-tools/hooks/oom-ext > $(DESTDIR)$(INITRAMFSTOOLSDIR)/hooks/oom-ext
	chmod 0755 $(DESTDIR)$(INITRAMFSTOOLSDIR)/hooks/oom-ext
	$(INSTALL) -m 0755 initramfs-tools/scripts/init-top/oom-ext $(DESTDIR)$(INITRAMFSTOOLSDIR)/scripts/init-top/oom-ext
	@# mkinitcpio install and runtime hooks.
	$(INSTALL) -d $(DESTDIR)$(INITCPIODIR)/install $(DESTDIR)$(INITCPIODIR)/hooks
	for hook in oom-ext sd-oom-ext; do \
		$(SUBST) mkinitcpio/install/$$hook > $(DESTDIR)$(INITCPIODIR)/install/$$hook && \
		chmod 0644 $(DESTDIR)$(INITCPIODIR)/install/$$hook || exit 1; \
	done
	$(INSTALL) -m 0644 mkinitcpio/hooks/oom-ext $(DESTDIR)$(INITCPIODIR)/hooks/oom-ext
	@# Man page, once it exists.
	if [ -f man/oom-ext.8 ]; then \
		$(INSTALL) -D -m 0644 man/oom-ext.8 $(DESTDIR)$(MANDIR)/man8/oom-ext.8; \
	fi
	@# Report hooks: executables run with the JSON report on stdin.
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/oom-ext/report.d
	@# Victim policy rules (docs/policy.md); the directory only, no rules.
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/oom-ext/policy.d
	@# journald catalog of the kill events (journalctl -x).
	$(INSTALL) -D -m 0644 systemd/oom-ext.catalog $(DESTDIR)$(LIBDIR)/systemd/catalog/oom-ext.catalog

install-enable: install-files
	if command -v systemctl > /dev/null; then \
		systemctl --root="$(DESTDIR)/" enable $(UNITS) || exit 1; \
		if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	else \
		echo "oom-ext: systemctl not found, units installed but not enabled"; \
	fi

uninstall:
	if [ -z "$(DESTDIR)" ] && command -v dkms > /dev/null && \
	   dkms status oom_ext/$(VERSION) 2> /dev/null | grep -q .; then \
		dkms remove oom_ext/$(VERSION) --all || exit 1; \
	fi
	if command -v systemctl > /dev/null && [ -f $(DESTDIR)$(UNITDIR)/oom-ext-guard.service ]; then \
		systemctl --root="$(DESTDIR)/" disable $(UNITS) || true; \
	fi
	rm -f $(DESTDIR)$(SBINDIR)/oom-ext
	rm -rf $(DESTDIR)$(DKMSSRCDIR)
	for unit in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$unit; done
	rm -f $(DESTDIR)$(PKGLIBDIR)/oom-ext-initrd.service
	-rmdir $(DESTDIR)$(PKGLIBDIR) 2> /dev/null
	rm -rf $(DESTDIR)$(DRACUTDIR)
	rm -f $(DESTDIR)$(INITRAMFSTOOLSDIR)/hooks/oom-ext $(DESTDIR)$(INITRAMFSTOOLSDIR)/scripts/init-top/oom-ext
	rm -f $(DESTDIR)$(INITCPIODIR)/install/oom-ext $(DESTDIR)$(INITCPIODIR)/install/sd-oom-ext \
	      $(DESTDIR)$(INITCPIODIR)/hooks/oom-ext
	@# On machines without mkinitcpio, install created these directories.
	-rmdir $(DESTDIR)$(INITCPIODIR)/install $(DESTDIR)$(INITCPIODIR)/hooks $(DESTDIR)$(INITCPIODIR) 2> /dev/null
	rm -f $(DESTDIR)$(MANDIR)/man8/oom-ext.8
	rm -f $(DESTDIR)$(LIBDIR)/systemd/catalog/oom-ext.catalog
	@# report.d and policy.d may hold the admin's files: removed only when empty.
	-rmdir $(DESTDIR)$(SYSCONFDIR)/oom-ext/report.d $(DESTDIR)$(SYSCONFDIR)/oom-ext/policy.d \
	       $(DESTDIR)$(SYSCONFDIR)/oom-ext 2> /dev/null
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "oom-ext: uninstalled; rebuild the initramfs (update-initramfs -u, dracut -f or mkinitcpio -P) to drop it from there too"

# DKMS: the source must be installed first (make install).
dkms-install:
	@if [ ! -f $(DESTDIR)$(DKMSSRCDIR)/dkms.conf ]; then \
		echo "oom-ext: $(DKMSSRCDIR) missing: run 'make install' first" >&2; exit 1; \
	fi
	if ! dkms status oom_ext/$(VERSION) | grep -q .; then dkms add oom_ext/$(VERSION); fi
	dkms build -k $(KVER) oom_ext/$(VERSION)
	dkms install -k $(KVER) oom_ext/$(VERSION)

dkms-uninstall:
	dkms remove oom_ext/$(VERSION) --all

clean:
	$(CARGO) clean
	$(MAKE) -C $(KMOD_DIR) clean
