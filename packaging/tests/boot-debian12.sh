#!/bin/bash
# Boot-integration check on a real Debian 12 tree, the way a user installs:
#   make install DESTDIR=<tree>, then inside the tree (chroot) either
#   `dracut --add oom-ext` (systemd initrd), `dracut` with
#   add_dracutmodules+=" oom-ext " in /etc/dracut.conf.d/ and the systemd
#   module omitted (dracut's shell initrd), or `update-initramfs -u`
#   (initramfs-tools), then lists the image, builds an ext4 disk
#   (mke2fs -d, no mount) and boots it under qemu-system-x86_64 -accel tcg.
#
# Usage: packaging/tests/boot-debian12.sh dracut-systemd|dracut-shell|initramfs-tools
# Environment:
#   OOM_EXT_ROOTFS  pristine Debian 12 tree with systemd, dracut-core,
#                   initramfs-tools and a linux-image (built by mmdebstrap;
#                   see below); copied, never changed
#   OOM_EXT_BIN     binary to install (default: the cargo release build)
#   OOM_EXT_KO      optional oom_ext.ko built for the tree's kernel
#   OOM_EXT_CMDLINE extra kernel command line (default: oom_ext.bufsize=16
#                   oom_ext.gracetime=30)
#   OOM_EXT_MAKE_ARGS extra `make install` arguments (e.g. KMOD_DIR=...)
#   KEEP=1          keep the work directory
# Prints PASS/FAIL per assertion and "N passed, N failed".
#
# The tree: mmdebstrap --variant=apt --include=systemd,systemd-sysv,udev,
#   dbus,kmod,procps,dracut-core,initramfs-tools,zstd,
#   linux-image-6.1.0-NN-amd64-unsigned bookworm DIR (with the
#   bookworm-updates and bookworm-security sources).

# Braces: bash parses the whole script before running it, so editing the
# file while it runs cannot break a run.
{
set -u
variant=${1:-}
case $variant in
dracut-systemd | dracut-shell | initramfs-tools) ;;
*)
    echo "usage: $0 dracut-systemd|dracut-shell|initramfs-tools" >&2
    exit 2
    ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${OOM_EXT_VM_CACHE:-$HOME/.cache/oom-ext-vm}
rootfs=${OOM_EXT_ROOTFS:-$cache/boot-it/rootfs}
bin=${OOM_EXT_BIN:-$repo/target/oom-ext}
cmdline_extra=${OOM_EXT_CMDLINE:-oom_ext.bufsize=16 oom_ext.gracetime=30}

passed=0
failed=0
pass() {
    echo "PASS $variant/$1"
    passed=$((passed + 1))
}
fail() {
    echo "FAIL $variant/$1: $2"
    failed=$((failed + 1))
}
check() { # NAME DESCRIPTION-ON-FAILURE COMMAND...
    local name=$1 why=$2
    shift 2
    if "$@"; then pass "$name"; else fail "$name" "$why"; fi
}
die() {
    echo "boot-debian12: $*" >&2
    echo "$passed passed, $((failed + 1)) failed"
    exit 1
}

[[ -d $rootfs/usr/lib/modules ]] || die "no Debian tree at $rootfs (see the header of $0)"
[[ -x $bin ]] || die "binary $bin missing: run 'make' (or set OOM_EXT_BIN)"
kver=$(find "$rootfs/usr/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
[[ -n $kver ]] || die "no kernel in $rootfs/usr/lib/modules"

work=$(mktemp -d "${TMPDIR:-/var/tmp}/oom-ext-boot.XXXXXX") || die "mktemp failed"
if [[ ${KEEP:-0} != 1 ]]; then trap 'rm -rf "$work"' EXIT; fi
tree=$work/tree
echo "work: $work  kernel: $kver  binary: $bin"
cp -a "$rootfs" "$tree" || die "copy of $rootfs failed"

# 1. Install the way a user does.
# shellcheck disable=SC2086 # a list of make arguments
make -C "$repo" --no-print-directory install DESTDIR="$tree" BIN="$bin" ${OOM_EXT_MAKE_ARGS:-} > "$work/install.log" 2>&1 ||
    die "make install failed: $(tail -n 5 "$work/install.log")"
if [[ -n ${OOM_EXT_KO:-} ]]; then
    install -D -m 0644 "$OOM_EXT_KO" "$tree/usr/lib/modules/$kver/updates/oom_ext.ko" || die "cannot install $OOM_EXT_KO"
fi

# The guest's side of the check: runs once the machine is up, prints
# BOOTCHECK lines on the console, kills the guard once to see the unit
# restart it, and powers off.
cat > "$tree/usr/local/sbin/oom-ext-bootcheck" << 'EOF'
#!/bin/sh
say() { echo "BOOTCHECK $*" > /dev/ttyS0; }
guard_pid() {
    for d in /proc/[0-9]*; do
        # NUL-separated, no trailing newline: `read` would report EOF.
        argv0=$(tr '\0' ' ' < "$d/cmdline" 2> /dev/null)
        case $argv0 in @oom-ext-guard* | oom-ext-guard*) echo "${d#/proc/}"; return ;; esac
    done
}
pid=$(guard_pid)
say "guard_pid=${pid:-none}"
say "main_pid=$(systemctl show -P MainPID oom-ext-guard.service)"
say "guard_active=$(systemctl is-active oom-ext-guard.service)"
say "report_state=$(systemctl show -P ActiveState oom-ext-report.service)/$(systemctl show -P Result oom-ext-report.service)"
say "userspace_us=$(systemctl show -P UserspaceTimestampMonotonic)"
say "initrd_us=$(systemctl show -P InitRDTimestampMonotonic)"
if [ -n "$pid" ]; then
    ticks=$(cut -d' ' -f22 "/proc/$pid/stat")
    say "guard_start_us=$((ticks * 1000000 / $(getconf CLK_TCK)))"
    say "guard_cgroup=$(cat "/proc/$pid/cgroup")"
    say "guard_root=$(readlink "/proc/$pid/root") guard_cwd=$(readlink "/proc/$pid/cwd") guard_exe=$(readlink "/proc/$pid/exe")"
    # Re-anchored: its root is the real root, not the freed initramfs.
    if [ "$(stat -L -c %d:%i "/proc/$pid/root")" = "$(stat -c %d:%i /)" ]; then
        say "guard_root_is_real=yes"
    else
        say "guard_root_is_real=no"
    fi
    say "guard_argv=$(tr '\0' ' ' < "/proc/$pid/cmdline")"
fi
say "cmdline=$(cat /proc/cmdline)"
say "failed_units=$(systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
journalctl -b -o short-monotonic --no-pager | grep -i 'oom-ext\|oom_ext' | grep -v 'command line' | head -n 60 |
    while IFS= read -r line; do say "log: $line"; done
if [ -n "$pid" ]; then
    kill -KILL "$pid"
    sleep 6
    say "restarted_pid=$(systemctl show -P MainPID oom-ext-guard.service)"
    say "restarted_active=$(systemctl is-active oom-ext-guard.service)"
    systemctl status --no-pager -l oom-ext-guard.service 2>&1 | while IFS= read -r line; do say "status: $line"; done
    journalctl -b --no-pager -o short-monotonic -u oom-ext-guard.service 2>&1 | tail -n 20 |
        while IFS= read -r line; do say "unit-log: $line"; done
fi
say "done"
systemctl poweroff
EOF
chmod 755 "$tree/usr/local/sbin/oom-ext-bootcheck"
cat > "$tree/etc/systemd/system/oom-ext-bootcheck.service" << 'EOF'
[Unit]
Description=oom_ext boot check (test only)
After=multi-user.target oom-ext-guard.service oom-ext-report.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/oom-ext-bootcheck
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/oom-ext-bootcheck.service "$tree/etc/systemd/system/multi-user.target.wants/oom-ext-bootcheck.service"
echo "guest" > "$tree/etc/hostname"
# Keep the console to the check's lines: no login prompt on ttyS0.
ln -sf /dev/null "$tree/etc/systemd/system/serial-getty@ttyS0.service"

# 2. Build the initramfs inside the tree.
in_tree() {
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare -m --propagation private sh -c '
        tree=$1; shift
        mount -t proc proc "$tree/proc" && mount --rbind /dev "$tree/dev" &&
        mount -t sysfs sys "$tree/sys" && mount -t tmpfs tmp "$tree/tmp" &&
        exec chroot "$tree" "$@"' sh "$tree" "$@"
}
initrd=/boot/initrd.img-$kver
# Fast compression: the default gzip -9 / zstd -15 of a generic image takes
# minutes on a loaded TCG host and tells nothing about oom_ext.
sed -i 's/^COMPRESS=.*/COMPRESS=zstd/' "$tree/etc/initramfs-tools/initramfs.conf"
echo "COMPRESSLEVEL=1" >> "$tree/etc/initramfs-tools/initramfs.conf"
mkdir -p "$tree/etc/dracut.conf.d"
echo 'compress="zstd -1"' > "$tree/etc/dracut.conf.d/10-test-compress.conf"
# As DKMS would after installing the module.
if [[ -n ${OOM_EXT_KO:-} ]]; then
    in_tree depmod "$kver" || die "depmod $kver failed"
fi
case $variant in
dracut-systemd)
    in_tree dracut -f -N --kver "$kver" --add oom-ext "$initrd" > "$work/initrd.log" 2>&1
    ;;
dracut-shell)
    mkdir -p "$tree/etc/dracut.conf.d"
    printf 'add_dracutmodules+=" oom-ext "\nomit_dracutmodules+=" systemd systemd-initrd dracut-systemd "\n' \
        > "$tree/etc/dracut.conf.d/90-oom-ext-test.conf"
    in_tree dracut -f -N --kver "$kver" "$initrd" > "$work/initrd.log" 2>&1
    ;;
initramfs-tools)
    in_tree update-initramfs -u -k "$kver" > "$work/initrd.log" 2>&1
    ;;
esac
rc=$?
if ((rc != 0)); then
    tail -n 30 "$work/initrd.log"
    die "initramfs generation failed (exit $rc)"
fi
grep -i 'oom' "$work/initrd.log" | sed 's/^/  generator: /'

# 3. What is inside the image.
if [[ $variant == initramfs-tools ]]; then
    in_tree lsinitramfs "$initrd" > "$work/contents" 2>&1
else
    in_tree lsinitrd "$initrd" > "$work/contents" 2>&1
fi
# shellcheck disable=SC2317 # called through check
has() { grep -Eq "$1" "$work/contents"; }
check image/binary "usr/sbin/oom-ext missing from the image" has '(^|[ /])usr/sbin/oom-ext$'
if [[ -n ${OOM_EXT_KO:-} ]]; then
    check image/module "oom_ext.ko missing from the image" has 'oom_ext\.ko'
fi
case $variant in
dracut-systemd)
    check image/unit "oom-ext-guard.service missing" has 'usr/lib/systemd/system/oom-ext-guard\.service$'
    check image/unit-wanted "sysinit.target.wants/oom-ext-guard.service missing" \
        has 'sysinit\.target\.wants/oom-ext-guard\.service'
    ;;
dracut-shell)
    check image/cmdline-hook "cmdline hook 00-oom-ext-init.sh missing" has 'hooks/cmdline/00-oom-ext-init\.sh'
    check image/no-unit "the systemd unit must not be in a shell initrd" bash -c "! grep -q 'oom-ext-guard.service' '$work/contents'"
    ;;
initramfs-tools)
    check image/init-top "scripts/init-top/oom-ext missing" has 'scripts/init-top/oom-ext$'
    ;;
esac

# 4. Disk image and boot.
disk=$work/disk.img
mke2fs -q -t ext4 -d "$tree" -L root "$disk" 3G > "$work/mke2fs.log" 2>&1 || die "mke2fs failed: $(cat "$work/mke2fs.log")"
console=$work/console.log
echo "booting (console: $console)"
timeout "${OOM_EXT_BOOT_TIMEOUT:-600}" qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -no-reboot \
    -kernel "$tree/boot/vmlinuz-$kver" -initrd "$tree$initrd" \
    -drive "file=$disk,if=virtio,format=raw" -nic none \
    -append "root=/dev/vda rw console=ttyS0 panic=-1 no_timer_check systemd.show_status=0 $cmdline_extra" \
    < /dev/null > "$console" 2>&1
# The serial getty is masked, yet kernel messages may still share a line.
tr -d '\r' < "$console" | sed -n 's/.*BOOTCHECK //p' > "$work/bootcheck"
val() { sed -n "s/^$1=//p" "$work/bootcheck" | tail -n 1; }
sed 's/^/  guest: /' "$work/bootcheck"

check boot/completes "the guest never ran its check (hung or crashed; see $console)" grep -q '^done$' "$work/bootcheck"
pid=$(val guard_pid)
case " $cmdline_extra " in
*" oom_ext=0 "* | *" oom_ext=off "*)
    # Switched off: no guard, no failed unit, no delay from the initrd unit.
    check off/no-guard "a guard runs (pid $pid) although oom_ext is off" test "$pid" = none
    check off/unit-inactive "oom-ext-guard.service is '$(val guard_active)'" test "$(val guard_active)" = inactive
    ;;
*)
    check guard/running "no @oom-ext-guard process in the real root" test -n "$pid" -a "$pid" != none
    check guard/is-unit-main-pid "oom-ext-guard.service MainPID '$(val main_pid)' is not the guard '$pid'" \
        test "$(val main_pid)" = "$pid"
    check guard/unit-active "oom-ext-guard.service is '$(val guard_active)'" test "$(val guard_active)" = active
    start=$(val guard_start_us)
    userspace=$(val userspace_us)
    check guard/started-in-initrd "guard started at ${start:-?} us, the real root's userspace at ${userspace:-?} us" \
        test -n "$start" -a -n "$userspace" -a "${start:-0}" -lt "${userspace:-0}"
    check guard/re-anchored "guard root is the real root: '$(val guard_root_is_real)'; $(val guard_root)" \
        test "$(val guard_root_is_real)" = yes
    check guard/restarted "after SIGKILL the unit has pid '$(val restarted_pid)', state '$(val restarted_active)'" \
        test "$(val restarted_active)" = active -a -n "$(val restarted_pid)" -a "$(val restarted_pid)" != 0 -a "$(val restarted_pid)" != "$pid"
    ;;
esac
check report/ran "oom-ext-report.service ended '$(val report_state)'" \
    bash -c "case '$(val report_state)' in active/success|inactive/success) true ;; *) false ;; esac"
check boot/no-failed-units "failed units: $(val failed_units)" test -z "$(val failed_units | tr -d ' ')"

echo "$passed passed, $failed failed"
exit $((failed == 0 ? 0 : 1))
}
