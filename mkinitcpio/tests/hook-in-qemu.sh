#!/bin/bash
# Boots mkinitcpio's runtime hook (mkinitcpio/hooks/oom-ext) in a busybox
# initramfs on a real Debian 12 kernel under QEMU (TCG), the way
# mkinitcpio's /init drives it: source the hook, call run_earlyhook, move
# /proc /sys /dev /run into the new root, busybox switch_root.
#
# Two boots:
#   normal  - the oom-ext binary is in the image: its init log line reaches
#             /dev/kmsg, the guard (argv[0] "@oom-ext-guard") runs, and runs
#             with the same pid after switch_root.
#   hostile - the binary is missing, then present but failing: the hook says
#             so in one kmsg line each time and the boot goes on.
#
# Usage: mkinitcpio/tests/hook-in-qemu.sh
#   OOM_EXT_BIN      binary to test (default: the cargo release build)
#   OOM_EXT_VM_CACHE cache dir (default ~/.cache/oom-ext-vm): kernel packages
#   OOM_EXT_KERNEL   a vmlinuz to use instead of Debian's 6.1 package
# Prints PASS/FAIL per test and "N passed, N failed" at the end.

# Braces: bash parses the whole script before running it, so editing the
# file while it runs cannot break a run.
{
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${OOM_EXT_BIN:-$repo/target/oom-ext}
busybox=${BUSYBOX:-/bin/busybox}
boot_timeout=${OOM_EXT_BOOT_TIMEOUT:-300}

passed=0
failed=0
pass() {
    echo "PASS $1"
    passed=$((passed + 1))
}
fail() {
    echo "FAIL $1: $2"
    failed=$((failed + 1))
}
die() {
    echo "hook-in-qemu: $*" >&2
    echo "$passed passed, $((failed + 1)) failed"
    exit 1
}

# Debian 12's 6.1 kernel (the first series debian_kvers names): resolved
# by apt, fetched once, unpacked into the cache kmod/tests uses too.
# shellcheck source=kmod/tests/debian-kernels.sh
. "$repo/kmod/tests/debian-kernels.sh"
fetch_kernel() {
    local kvers
    kvers=$(debian_kvers) || return 1
    vmlinuz_of "${kvers%% *}"
}

# The mkinitcpio-like /init: same order as mkinitcpio's (mounts, early
# hooks, then the switch into the new root with /proc /sys /dev /run moved).
write_init() {
    cat > "$1/init" << 'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
echo "HOOKTEST stage=early"

guard_pid() {
    for d in /proc/[0-9]*; do
        IFS= read -r argv0 < "$d/cmdline" 2> /dev/null || true
        case $argv0 in @oom-ext-guard* | oom-ext-guard*) echo "${d#/proc/}"; return ;; esac
    done
    echo none
}

if [ -f /hostile ]; then
    # 1: binary missing; 2: binary present but failing.
    . /hooks/oom-ext
    run_earlyhook
    echo "HOOKTEST hook-returned=missing"
    printf '#!/bin/sh\nexit 7\n' > /usr/sbin/oom-ext
    chmod 755 /usr/sbin/oom-ext
    run_earlyhook
    echo "HOOKTEST hook-returned=failing"
else
    . /hooks/oom-ext
    run_earlyhook
    echo "HOOKTEST hook-returned=normal"
    sleep 2
    echo "HOOKTEST guard-before=$(guard_pid)"
fi
dmesg | grep 'oom-ext' | sed 's/^/HOOKTEST kmsg: /'

mkdir -p /new_root
mount -t tmpfs newroot /new_root
mkdir -p /new_root/bin /new_root/proc /new_root/sys /new_root/dev /new_root/run
cp /bin/busybox /new_root/bin/busybox
cp /check /new_root/check
for m in proc sys dev run; do mount --move "/$m" "/new_root/$m"; done
exec switch_root /new_root /check
EOF
    cat > "$1/check" << 'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
sleep 2
for d in /proc/[0-9]*; do
    IFS= read -r argv0 < "$d/cmdline" 2> /dev/null || true
    case $argv0 in @oom-ext-guard* | oom-ext-guard*) echo "HOOKTEST guard-after=${d#/proc/}"; break ;; esac
done
echo "HOOKTEST stage=real-root"
poweroff -f
EOF
    chmod 755 "$1/init" "$1/check"
}

# build_and_boot NAME WITH_BINARY(0/1): boots, sets $log to the console log.
build_and_boot() {
    local name=$1 with_bin=$2 root img
    root=$work/$name-root
    img=$work/$name.cpio.gz
    log=$work/$name.console
    mkdir -p "$root"/{bin,usr/sbin,proc,sys,dev,run,hooks} || die "mkdir $root"
    cp "$busybox" "$root/bin/busybox" || die "cannot copy $busybox"
    cp "$repo/mkinitcpio/hooks/oom-ext" "$root/hooks/oom-ext" || die "cannot copy the hook"
    if ((with_bin)); then
        cp "$bin" "$root/usr/sbin/oom-ext" || die "cannot copy $bin"
    else
        touch "$root/hostile"
    fi
    write_init "$root"
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$img" || die "cpio failed"
    timeout "$boot_timeout" qemu-system-x86_64 -accel tcg -m 512 -smp 1 -nographic -no-reboot \
        -kernel "$kernel" -initrd "$img" -nic none \
        -append "console=ttyS0 loglevel=4 panic=-1 no_timer_check rdinit=/init oom_ext.bufsize=16" \
        < /dev/null > "$log" 2>&1
}

# value KEY LOG: the value of the last "HOOKTEST KEY=value" line.
value() {
    tr -d '\r' < "$2" | sed -n "s/^HOOKTEST $1=//p" | tail -n 1
}

[[ -x $bin ]] || die "binary $bin missing: run 'make' (or set OOM_EXT_BIN)"
[[ -x $busybox ]] || die "busybox $busybox missing (apt-get install busybox-static)"
command -v qemu-system-x86_64 > /dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
kernel=${OOM_EXT_KERNEL:-$(fetch_kernel)} || die "no kernel to boot"
[[ -f $kernel ]] || die "kernel $kernel not found"
work=$(mktemp -d "${TMPDIR:-/tmp}/oom-ext-initcpio.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$work"' EXIT
echo "kernel: $kernel"
echo "binary: $bin"

# Boot 1: the normal path.
build_and_boot normal 1
tr -d '\r' < "$log" | sed -n 's/^HOOKTEST kmsg: /  kmsg: /p'
if tr -d '\r' < "$log" | grep -Eq '^HOOKTEST kmsg: .*oom-ext\[[0-9]+\]: '; then
    pass "normal/init-log-line"
else
    fail "normal/init-log-line" "no 'oom-ext[PID]: ' line in the kernel log"
fi
# The command line's oom_ext.bufsize=16 reached the binary (its summary line).
if tr -d '\r' < "$log" | grep -Eq '^HOOKTEST kmsg: .*oom-ext\[[0-9]+\]: .*bufsize=16\b'; then
    pass "normal/cmdline-parameter-applied"
else
    fail "normal/cmdline-parameter-applied" "no init log line with bufsize=16 (from oom_ext.bufsize=16)"
fi
before=$(value guard-before "$log")
after=$(value guard-after "$log")
if [[ $before =~ ^[0-9]+$ ]]; then
    pass "normal/guard-running (pid $before)"
else
    fail "normal/guard-running" "no process with argv[0] @oom-ext-guard (or oom-ext-guard, re-executed) after the hook (got '${before:-nothing}')"
fi
if [[ $before =~ ^[0-9]+$ && $after == "$before" ]]; then
    pass "normal/guard-survives-switch_root (pid $after)"
else
    fail "normal/guard-survives-switch_root" "guard pid before '${before:-none}', after '${after:-none}'"
fi
if [[ $(value stage "$log") == real-root ]]; then
    pass "normal/boot-completes"
else
    fail "normal/boot-completes" "the real root was not reached"
fi
if ((failed)); then
    echo "--- console of the normal boot ($log):"
    tr -d '\r' < "$log" | tail -n 40
fi

# Boot 2: missing and failing binary.
build_and_boot hostile 0
if [[ $(value hook-returned "$log") == failing ]] && [[ $(value stage "$log") == real-root ]]; then
    pass "hostile/boot-completes"
else
    fail "hostile/boot-completes" "the boot did not get through both hook runs to the real root"
fi
if tr -d '\r' < "$log" | grep -q '^HOOKTEST kmsg: .*oom-ext: /usr/sbin/oom-ext missing from the initramfs; boot continues without it'; then
    pass "hostile/missing-binary-logged"
else
    fail "hostile/missing-binary-logged" "no kmsg line naming the missing binary"
fi
if tr -d '\r' < "$log" | grep -q "^HOOKTEST kmsg: .*oom-ext: 'oom-ext init' exited with status 7; boot continues without it"; then
    pass "hostile/failing-binary-logged"
else
    fail "hostile/failing-binary-logged" "no kmsg line naming the exit status 7"
fi

echo "$passed passed, $failed failed"
exit $((failed == 0 ? 0 : 1))
}
