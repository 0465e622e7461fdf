#!/bin/bash
# Build the oom-ext and oom-ext-dkms .debs into OUTDIR (default target/deb)
# with `dpkg-buildpackage -us -uc -b`, from a copy of the source tree so
# that nothing is written next to the checkout. The copy shares the
# checkout's target/ (cargo's cache: std takes minutes to rebuild).
# Extra arguments go to dpkg-buildpackage (e.g. -d without the
# Build-Depends packages, when cargo comes from rustup).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/target/deb}
[ $# -gt 0 ] && shift
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
version=$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Version)
src=$out/oom-ext-$version

rm -rf "$src"
mkdir -p "$src" "$repo/target"
# The tracked files when this is a git checkout, else all but target/.
existing() {
	local f
	while IFS= read -r -d '' f; do
		if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
	done
}
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
	# ls-files also names tracked files deleted in the work tree: skip those.
	(cd "$repo" && git ls-files -z --cached --others --exclude-standard | existing |
		tar --null -T - -cf -) | tar -C "$src" -xf -
else
	(cd "$repo" && tar --exclude=./target -cf - .) | tar -C "$src" -xf -
fi
ln -s "$repo/target" "$src/target"
(cd "$src" && dpkg-buildpackage -us -uc -b "$@")
rm -rf "$src"
ls "$out"/*.deb
