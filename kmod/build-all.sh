#!/bin/bash
# Build oom_ext.ko with W=1 against Debian 12's two kernel series (6.1 and
# 6.12, resolved by apt) and fail on any compiler or modpost warning.
#
#   kmod/build-all.sh [--test] [OUTDIR]   -> OUTDIR/<kver>/oom_ext.ko
#
# --test also builds OUTDIR/<kver>/oom_ext-test.ko, the same module with
# the test knobs of test_knobs.c (make OOM_EXT_TEST=y), for the smoke
# loop; never for a package. OUTDIR defaults to kmod/out. Headers are fetched and unpacked (not
# installed) under ${OOM_EXT_VM_CACHE:-$HOME/.cache/oom-ext-vm}/headers;
# OOM_EXT_KVERS="6.1.0-56-amd64 ..." overrides the kernel list.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
. "$here/tests/debian-kernels.sh"

variants=("")
if [ "${1:-}" = --test ]; then
	variants+=(test)
	shift
fi
out=${1:-$here/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
jobs=$(nproc)
rc=0

for kver in $(debian_kvers); do
	kdir=$(headers_dir "$kver")
	for variant in "${variants[@]}"; do
		suffix=${variant:+-$variant}
		build="$out/$kver/build$suffix"
		rm -rf "$build" && mkdir -p "$build"
		cp "$here"/*.c "$here"/*.h "$here/Kbuild" "$build/"
		log="$out/$kver/build$suffix.log"
		flags=()
		[ "$variant" = test ] && flags=(OOM_EXT_TEST=y)
		if ! make -C "$kdir" M="$build" W=1 -j"$jobs" "${flags[@]}" modules >"$log" 2>&1; then
			cat "$log"
			echo "FAIL build $kver$suffix (log: $log)"
			rc=1
			continue
		fi
		# "Skipping BTF generation" is informational, everything else counts.
		if grep -E -i 'warning|error' "$log" | grep -v -i 'skipping btf'; then
			echo "FAIL build $kver$suffix: warnings (log: $log)"
			rc=1
			continue
		fi
		cp "$build/oom_ext.ko" "$out/$kver/oom_ext$suffix.ko"
		echo "ok   build $kver -> $out/$kver/oom_ext$suffix.ko"
	done
done
exit $rc
