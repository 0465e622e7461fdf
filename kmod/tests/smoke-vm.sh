# shellcheck shell=bash
# Busybox initramfs VM for oom_ext: build the cpio and boot it under QEMU TCG.
# Sourced by qemu-smoke.sh and ../bench/release-latency.sh.

smoke_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# build_hog OUT: the static test helper (memory hog, poll waiter).
build_hog() {
	gcc -static -O2 -Wall -Wextra -Werror -o "$1" "$smoke_dir/guest/hog.c"
}

# build_initramfs KO HOG OUT [KODIR [TESTKO]]: a gzip'd newc cpio with
# busybox, /init, the module and the hog; KODIR's *.ko go to /pstore
# (ramoops), TESTKO (the test build) to /oom_ext-test.ko.
build_initramfs() {
	local ko=$1 hog=$2 out=$3 kodir=${4:-} testko=${5:-} root
	root=$(mktemp -d)
	mkdir -p "$root/bin" "$root/pstore"
	if [ -n "$kodir" ]; then cp "$kodir"/*.ko "$root/pstore/"; fi
	if [ -n "$testko" ]; then cp "$testko" "$root/oom_ext-test.ko"; fi
	cp /bin/busybox "$root/bin/busybox"
	cp "$smoke_dir/guest/init" "$root/init"
	cp "$ko" "$root/oom_ext.ko"
	cp "$hog" "$root/hog"
	chmod 755 "$root/init" "$root/hog"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
	rm -rf "$root"
}

# boot_vm VMLINUZ INITRD MODE LOG TIMEOUT_S [QEMU_MEM_MB]: boots with
# -no-reboot (a reboot or panic-reboot ends QEMU) unless SMOKE_REBOOT=1
# (then a reboot keeps RAM, for ramoops, and only poweroff ends QEMU).
# SMOKE_APPEND adds kernel parameters. Returns timeout's status (124 when
# the VM had to be killed).
# thread=single: with multi-threaded TCG (QEMU 7.2) the 6.12 kernel now and
# then dies at boot with "Oops: int3" in sched_clock_idle_wakeup_event
# (cross-CPU code patching); two vCPUs on one host thread never did.
boot_vm() {
	local kernel=$1 initrd=$2 mode=$3 log=$4 limit=$5 mem=${6:-256} noreboot=-no-reboot
	[ "${SMOKE_REBOOT:-0}" = 1 ] && noreboot=
	# shellcheck disable=SC2086 # $noreboot: one word or none
	timeout --foreground -k 5 "$limit" \
		qemu-system-x86_64 -accel tcg,thread=single -m "$mem" -smp 2 \
		-display none -monitor none -serial stdio $noreboot \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 loglevel=3 smoke=$mode ${SMOKE_APPEND:-}" \
		</dev/null >"$log" 2>&1
}
