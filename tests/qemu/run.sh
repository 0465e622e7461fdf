#!/bin/bash
# Boots a real Debian kernel (QEMU TCG) with a busybox initramfs holding the
# release oom-ext binary and runs init.sh: init, guard, an OOM storm and a
# switch_root. Usage: tests/qemu/run.sh KERNEL_IMAGE [oom_ext.ko|oom_ext.ko.xz] [EXTRA_CMDLINE]
# Prints the "SMOKE" lines; full console log in $OUT/console.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
kernel=${1:?kernel image}
ko=${2:-}
extra=${3:-}
OUT=${OUT:-$(mktemp -d /tmp/oom-ext-qemu.XXXXXX)}
bin=$top/target/oom-ext
[ -x "$bin" ] || make -C "$top" -s all
ir=$OUT/initramfs
rm -rf "$ir"; mkdir -p "$ir"/{bin,usr/sbin,proc,sys,dev,run,lib/modules}
cp /bin/busybox "$ir/bin/busybox"
cp "$bin" "$ir/usr/sbin/oom-ext"
gcc -static -O2 -o "$ir/hog" "$here/hog.c"
cp "$here/init.sh" "$ir/init"; cp "$here/init2.sh" "$ir/init2.sh"; chmod +x "$ir/init" "$ir/init2.sh"
# A .ko.xz is loaded with MODULE_INIT_COMPRESSED_FILE (the kernel decompresses).
case "$ko" in
*.ko.xz) cp "$ko" "$ir/oom_ext.ko.xz" ;;
*.ko) cp "$ko" "$ir/oom_ext.ko" ;;
esac
(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/initramfs.gz"
timeout --foreground -k 5 400 qemu-system-x86_64 -accel tcg -m 256 -smp 1 -display none -monitor none \
	-serial "file:$OUT/console.log" -no-reboot -kernel "$kernel" -initrd "$OUT/initramfs.gz" \
	-append "console=ttyS0 loglevel=4 panic=-1 oom_ext.bufsize=16 oom_ext.resettime=5 $extra" || true
grep -a '^SMOKE' "$OUT/console.log" || { echo "no SMOKE lines; see $OUT/console.log"; exit 1; }
grep -aq '^SMOKE done=1' "$OUT/console.log"
