#!/bin/sh
# Runs the parser fuzz targets with libFuzzer without needing cargo-fuzz:
# nightly toolchain, sancov instrumentation, dynamic linking (the RUSTFLAGS
# below replace the project's +crt-static, which libFuzzer does not survive).
# Usage: fuzz/run.sh [SECONDS per target] (default 60)
set -eu
cd "$(dirname "$0")"
secs=${1:-60}
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing" \
	cargo +nightly build --release --target-dir target/cov
for t in cmdline flag files; do
	mkdir -p "corpus/$t"
	"target/cov/x86_64-unknown-linux-gnu/release/$t" -max_total_time="$secs" "corpus/$t"
done
