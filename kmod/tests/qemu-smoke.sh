#!/bin/bash
# Fast module loop: boot Debian 12's 6.1 and 6.12 kernels (QEMU TCG, no
# disk) with a busybox initramfs holding oom_ext.ko, a memory hog and a test
# /init (guest/init), and check the module's behaviour in each boot:
#   main   parameters, sysctls, bad values (EINVAL, unchanged), run-time
#          bufsize, concurrent writers, trigger + poll(), unload during OOM,
#          load/unload cycles vs MemFree, bad module parameters, symlinked
#          flag path, an OOM entry during a bufsize write and a re-arm
#          (with the test build oom_ext-test.ko, held mid-growth), a chunk
#          allocated as an OOM entry came (given back, not published), a real
#          OOM (release, flag format, end of state, flag removal, re-arm
#          after resettime)
#   panic  gracetime=7 with kernel.panic=1 under a persistent OOM, the
#          flag's directory created only after gracetime: the kernel waits
#          for the retried flag, panics with oom_ext's message and reboots;
#          the second boot (same QEMU, RAM kept) finds the panic message in
#          pstore (ramoops on memory reserved with memmap=)
#
#   kmod/tests/qemu-smoke.sh [KVER...]     (default: both Debian series)
#
# Prints PASS/FAIL per check and ends with "N passed, N failed"; exit 1 on
# any failure. Consoles are kept in $OOM_EXT_SMOKE_OUT (default
# kmod/out/smoke). Needs qemu-system-x86, busybox-static, gcc, cpio.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
. "$here/debian-kernels.sh"
# shellcheck source-path=SCRIPTDIR
. "$here/smoke-vm.sh"

out=${OOM_EXT_SMOKE_OUT:-$here/../out/smoke}
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec 9>"$out/.lock"
flock -n 9 || { echo "another qemu-smoke.sh uses $out (set OOM_EXT_SMOKE_OUT)" >&2; exit 2; }
if [ $# -gt 0 ]; then kvers="$*"; else kvers=$(debian_kvers); fi

passed=0
failed=0
result() { # result PASS|FAIL TEXT
	echo "$1 $2"
	if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

"$here/../build-all.sh" --test "$out/ko" >"$out/build.log" 2>&1 || {
	cat "$out/build.log"
	result FAIL "module build and test build (W=1, no warnings)"
	echo "$passed passed, $failed failed"
	exit 1
}
result PASS "module build and test build (W=1, no warnings) for: $kvers"
build_hog "$out/hog"

for kver in $kvers; do
	vmlinuz=$(vmlinuz_of "$kver")
	initrd="$out/$kver.initrd.gz"
	build_initramfs "$out/ko/$kver/oom_ext.ko" "$out/hog" "$initrd" "$(ramoops_dir "$kver")" \
		"$out/ko/$kver/oom_ext-test.ko"

	log="$out/$kver.main.log"
	rc=0
	boot_vm "$vmlinuz" "$initrd" main "$log" 600 || rc=$?
	while IFS= read -r line; do
		case $line in
		*"SMOKE PASS "*) result PASS "[$kver] ${line#*SMOKE PASS }" ;;
		*"SMOKE FAIL "*) result FAIL "[$kver] ${line#*SMOKE FAIL }" ;;
		esac
	done < <(tr -d '\r' <"$log")
	if grep -q 'SMOKE END' "$log"; then
		result PASS "[$kver] main boot ran to the end"
	else
		result FAIL "[$kver] main boot ran to the end (rc=$rc, console: $log)"
	fi

	log="$out/$kver.panic.log"
	rc=0
	# The panic reboots inside QEMU (RAM kept): the second boot reads the
	# panic back from ramoops on the reserved 1 MiB at 224 MiB, then powers off.
	SMOKE_REBOOT=1 SMOKE_APPEND="memmap=1M\$0x0e000000" \
		boot_vm "$vmlinuz" "$initrd" panic "$log" 400 || rc=$?
	if [ "$rc" = 124 ]; then
		result FAIL "[$kver] gracetime panic rebooted the VM and the second boot ended (hung, killed after 400 s; console: $log)"
	else
		result PASS "[$kver] gracetime panic rebooted the VM and the second boot ended (qemu exit $rc)"
	fi
	while IFS= read -r line; do
		case $line in
		*"SMOKE PASS "*) result PASS "[$kver] ${line#*SMOKE PASS }" ;;
		esac
	done < <(tr -d '\r' <"$log")
	if grep -q 'Kernel panic - not syncing: oom_ext: OOM state lasted gracetime=7 s (crash flag present)' "$log"; then
		result PASS "[$kver] panic message names oom_ext, gracetime and a written flag"
	else
		result FAIL "[$kver] panic message names oom_ext, gracetime and a written flag (console: $log)"
	fi
	if grep -q 'SMOKE FAIL' "$log"; then
		result FAIL "[$kver] panic boot: $(grep -m1 'SMOKE FAIL' "$log" | tr -d '\r')"
	fi
	if ! grep -q 'SMOKE PASS pstore' "$log"; then
		result FAIL "[$kver] the second boot found the panic in pstore (console: $log)"
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
