#!/bin/bash
# Run the kernel's checkpatch.pl --no-tree on the module sources. Debian's
# header packages do not ship it, so it is taken from linux-source-6.1
# (apt-get download, ~140 MB once, cached; only 3 files are kept).
# Every *.c and *.h of kmod/. compat.h exists to test kernel versions:
# LINUX_VERSION_CODE is allowed there and nowhere else.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${OOM_EXT_VM_CACHE:-$HOME/.cache/oom-ext-vm}/checkpatch
cp_pl=$(find "$cache" -path "*/scripts/checkpatch.pl" -print -quit 2>/dev/null || true)
if [ -z "$cp_pl" ]; then
	mkdir -p "$cache"
	(cd "$cache" &&
		apt-get download -q -o APT::Sandbox::User=root linux-source-6.1 >&2 &&
		dpkg-deb --fsys-tarfile linux-source-6.1_*.deb |
		tar -x --wildcards '*.tar.xz' -O |
			tar -xJ --wildcards '*/scripts/checkpatch.pl' \
				'*/scripts/spelling.txt' '*/scripts/const_structs.checkpatch' &&
		rm -f linux-source-6.1_*.deb)
	cp_pl=$(find "$cache" -path "*/scripts/checkpatch.pl" -print -quit)
fi

rc=0
checked=()
for f in "$here"/*.c "$here"/*.h; do
	ignore=()
	[ "$(basename "$f")" = compat.h ] && ignore=(--ignore LINUX_VERSION_CODE)
	perl "$cp_pl" --no-tree --quiet "${ignore[@]}" --file "$f" || rc=1
	checked+=("$(basename "$f")")
done
if [ $rc = 0 ]; then echo "checkpatch: ${checked[*]} clean"; fi
exit $rc
