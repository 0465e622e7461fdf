#!/bin/bash
# Build oom_ext.ko with W=1 against Debian 12's two kernel series (6.1 and
# 6.12, resolved by apt) and fail on any compiler or modpost warning.
#
#   kmod/build-all.sh [OUTDIR]   -> OUTDIR/<kver>/oom_ext.ko
#
# OUTDIR defaults to kmod/out. Headers are fetched and unpacked (not
# installed) under ${OOM_EXT_VM_CACHE:-$HOME/.cache/oom-ext-vm}/headers;
# OOM_EXT_KVERS="6.1.0-56-amd64 ..." overrides the kernel list.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
. "$here/tests/debian-kernels.sh"

out=${1:-$here/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
jobs=$(nproc)
rc=0

for kver in $(debian_kvers); do
	kdir=$(headers_dir "$kver")
	build="$out/$kver/build"
	rm -rf "$build" && mkdir -p "$build"
	cp "$here"/*.c "$here"/*.h "$here/Kbuild" "$build/"
	log="$out/$kver/build.log"
	if ! make -C "$kdir" M="$build" W=1 -j"$jobs" modules >"$log" 2>&1; then
		cat "$log"
		echo "FAIL build $kver (log: $log)"
		rc=1
		continue
	fi
	# "Skipping BTF generation" is informational, everything else counts.
	if grep -E -i 'warning|error' "$log" | grep -v -i 'skipping btf'; then
		echo "FAIL build $kver: warnings (log: $log)"
		rc=1
		continue
	fi
	cp "$build/oom_ext.ko" "$out/$kver/oom_ext.ko"
	echo "ok   build $kver -> $out/$kver/oom_ext.ko"
done
exit $rc
