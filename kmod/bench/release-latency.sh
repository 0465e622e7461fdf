#!/bin/bash
# Benchmark (not a test): how long the OOM notifier takes to release a
# 32 MiB buffer, and how long the re-arm allocation takes, on Debian 12's
# 6.1 and 6.12 kernels. Boots the busybox smoke VM (QEMU TCG) N times per
# kernel; each boot runs one real OOM (guest/init, smoke=bench) and reads
# release_ns / rearm_ns from /sys/kernel/oom_ext/status.
#
#   kmod/bench/release-latency.sh [N] [KVER...]     (N >= 3, default 5)
#
# Env: OOM_EXT_BENCH_PATCH=report-freed builds the experiment variant
# (bench/report-freed.patch: the released pages are reported to the OOM
# killer as freed, see README.md). TCG timings are noisy: compare within
# one run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
. "$here/../tests/debian-kernels.sh"
# shellcheck source-path=SCRIPTDIR
. "$here/../tests/smoke-vm.sh"

n=${1:-5}
[ "$n" -ge 3 ] || { echo "N must be >= 3" >&2; exit 2; }
shift || true
if [ $# -gt 0 ]; then kvers="$*"; else kvers=$(debian_kvers); fi
out=${OOM_EXT_BENCH_OUT:-$here/../out/bench}
mkdir -p "$out"

if [ -n "${OOM_EXT_BENCH_PATCH:-}" ]; then
	# Experiment variant: the same source with a patch, W=1 as usual.
	for kver in $kvers; do
		b="$out/ko/$kver/build"
		rm -rf "$b" && mkdir -p "$b"
		cp "$here"/../*.c "$here"/../*.h "$here/../Kbuild" "$b/"
		patch -s -d "$b" -p1 <"$here/$OOM_EXT_BENCH_PATCH.patch"
		make -s -C "$(headers_dir "$kver")" M="$b" W=1 modules >"$out/build.log" 2>&1 ||
			{ cat "$out/build.log"; exit 1; }
		cp "$b/oom_ext.ko" "$out/ko/$kver/oom_ext.ko"
	done
else
	"$here/../build-all.sh" "$out/ko" >"$out/build.log" 2>&1 ||
		{ cat "$out/build.log"; exit 1; }
fi
build_hog "$out/hog"

# stats NAME VALUES...: "NAME min/median/max".
stats() {
	local name=$1
	shift
	printf '%s\n' "$@" | sort -n | awk -v name="$name" '
		{ v[NR] = $1 }
		END { printf "%-16s min %s  median %s  max %s\n", name, v[1], v[int((NR + 1) / 2)], v[NR] }'
}

echo "oom_ext release/re-arm benchmark: bufsize=32 MiB, $n boots per kernel, QEMU TCG"
echo "patch: ${OOM_EXT_BENCH_PATCH:-none}"
for kver in $kvers; do
	initrd="$out/$kver.initrd.gz"
	build_initramfs "$out/ko/$kver/oom_ext.ko" "$out/hog" "$initrd"
	rel=() rearm=() kills=() hog=() calls=() room=()
	for i in $(seq "$n"); do
		log="$out/$kver.$i.log"
		boot_vm "$(vmlinuz_of "$kver")" "$initrd" bench "$log" 300 || true
		line=$(grep -a 'SMOKE BENCH' "$log" | tr -d '\r' || true)
		if [ -z "$line" ]; then
			echo "[$kver] boot $i: no result (console: $log)"
			continue
		fi
		echo "[$kver] boot $i: ${line#*SMOKE BENCH }"
		get() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<" ${line#*SMOKE BENCH }"; }
		rel+=("$(($(get release_ns) / 1000))")
		rearm+=("$(($(get rearm_ns) / 1000))")
		kills+=("$(get oom_kills)")
		calls+=("$(get oom_calls)")
		hog+=("$(get hog_runtime_ms)")
		room+=("$(get free_at_kill_kb)")
	done
	[ ${#rel[@]} -gt 0 ] || { echo "[$kver] no results"; continue; }
	echo "== $kver (${#rel[@]} boots)"
	stats "release_us" "${rel[@]}"
	stats "rearm_us" "${rearm[@]}"
	stats "oom_calls" "${calls[@]}"
	stats "oom_kills" "${kills[@]}"
	stats "hog_runtime_ms" "${hog[@]}"
	stats "free_at_kill_kb" "${room[@]}"
done
