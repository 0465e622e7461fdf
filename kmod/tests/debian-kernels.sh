# shellcheck shell=bash
# Debian 12 kernel packages for building and booting oom_ext: resolved by apt
# (never hard-coded), fetched with apt-get download, unpacked with dpkg-deb -x
# into a cache, never installed on the host. Sourced by build-all.sh,
# tests/qemu-smoke.sh, bench/release-latency.sh and
# mkinitcpio/tests/hook-in-qemu.sh.
#
#   OOM_EXT_VM_CACHE   cache root (default $HOME/.cache/oom-ext-vm)
#   OOM_EXT_KVERS      space-separated kernel releases to use instead of
#                      resolving linux-headers-amd64 / linux-headers-6.12-amd64

OOM_EXT_VM_CACHE=${OOM_EXT_VM_CACHE:-$HOME/.cache/oom-ext-vm}

# dep_of PACKAGE REGEX: the first dependency of PACKAGE that matches REGEX.
dep_of() {
	apt-cache depends "$1" 2>/dev/null |
		sed -n 's/^ *|\{0,1\}Depends: //p' | grep -E -m1 "$2"
}

# debian_kvers: the kernel releases of Debian 12's two series, e.g.
# "6.1.0-56-amd64 6.12.117+deb12-amd64".
debian_kvers() {
	if [ -n "${OOM_EXT_KVERS:-}" ]; then
		echo "$OOM_EXT_KVERS"
		return
	fi
	local meta pkg out=""
	for meta in linux-headers-amd64 linux-headers-6.12-amd64; do
		pkg=$(dep_of "$meta" '^linux-headers-') || {
			echo "debian-kernels: apt-cache knows no $meta (run apt-get update)" >&2
			return 1
		}
		out="$out ${pkg#linux-headers-}"
	done
	echo "${out# }"
}

# fetch_debs DIR PKG...: apt-get download into DIR (skips files present).
fetch_debs() {
	local dir=$1 pkg
	shift
	mkdir -p "$dir"
	for pkg in "$@"; do
		if ! ls "$dir/${pkg//+/%2b}"_*.deb >/dev/null 2>&1 &&
			! ls "$dir/${pkg}"_*.deb >/dev/null 2>&1; then
			(cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2) || {
				echo "debian-kernels: apt-get download $pkg failed" >&2
				return 1
			}
		fi
	done
}

# headers_dir KVER: prints the kbuild tree (KDIR) for KVER, fetching and
# unpacking linux-headers-KVER, its -common and linux-kbuild-* when missing.
# Absolute symlinks into /usr/src and /usr/lib/linux-kbuild-* are rewritten
# to point into the unpacked tree.
headers_dir() {
	local kver=$1 root="$OOM_EXT_VM_CACHE/headers/$1"
	local kdir="$root/usr/src/linux-headers-$kver"
	if [ ! -e "$root/.done" ]; then
		local hdr="linux-headers-$kver" common kbuild deb link target
		if ! common=$(dep_of "$hdr" '^linux-headers-.*-common$') ||
			! kbuild=$(dep_of "$hdr" '^linux-kbuild-'); then
			echo "debian-kernels: cannot resolve dependencies of $hdr" >&2
			return 1
		fi
		fetch_debs "$OOM_EXT_VM_CACHE/debs" "$hdr" "$common" "$kbuild" || return 1
		rm -rf "$root" && mkdir -p "$root"
		for deb in "$hdr" "$common" "$kbuild"; do
			dpkg-deb -x "$(ls "$OOM_EXT_VM_CACHE/debs/${deb}"_*.deb 2>/dev/null ||
				ls "$OOM_EXT_VM_CACHE/debs/${deb//+/%2b}"_*.deb)" "$root" || return 1
		done
		find "$root" -type l -lname '/*' -print | while read -r link; do
			target=$(readlink "$link")
			ln -sfn "$root$target" "$link"
		done
		# The arch Makefile includes the -common tree by absolute path.
		sed -i "s|/usr/src/|$root/usr/src/|" "$kdir/Makefile" || return 1
		touch "$root/.done"
	fi
	echo "$kdir"
}

# vmlinuz_of KVER: prints the path of the unsigned kernel image for KVER,
# fetching linux-image-KVER-unsigned when missing.
vmlinuz_of() {
	local kver=$1 root="$OOM_EXT_VM_CACHE/images/$1"
	if [ ! -e "$root/.done" ]; then
		local pkg="linux-image-$kver-unsigned"
		fetch_debs "$OOM_EXT_VM_CACHE/debs" "$pkg" || return 1
		rm -rf "$root" && mkdir -p "$root"
		dpkg-deb --fsys-tarfile "$(ls "$OOM_EXT_VM_CACHE/debs/${pkg}"_*.deb 2>/dev/null ||
			ls "$OOM_EXT_VM_CACHE/debs/${pkg//+/%2b}"_*.deb)" |
			tar -x -C "$root" "./boot/vmlinuz-$kver" "./boot/System.map-$kver" "./boot/config-$kver" || return 1
		touch "$root/.done"
	fi
	echo "$root/boot/vmlinuz-$kver"
}

# ramoops_dir KVER: prints a directory holding KVER's ramoops.ko and
# reed_solomon.ko (uncompressed), taken from the same image package, for
# the smoke VM's pstore check.
ramoops_dir() {
	local kver=$1 dir="$OOM_EXT_VM_CACHE/images/$1/ramoops"
	if [ ! -e "$dir/.done" ]; then
		local pkg="linux-image-$kver-unsigned" deb tmp
		fetch_debs "$OOM_EXT_VM_CACHE/debs" "$pkg" || return 1
		deb=$(ls "$OOM_EXT_VM_CACHE/debs/${pkg}"_*.deb 2>/dev/null ||
			ls "$OOM_EXT_VM_CACHE/debs/${pkg//+/%2b}"_*.deb)
		tmp=$(mktemp -d)
		dpkg-deb --fsys-tarfile "$deb" |
			tar -x -C "$tmp" --wildcards '*/ramoops.ko*' '*/reed_solomon.ko*' || return 1
		rm -rf "$dir" && mkdir -p "$dir"
		find "$tmp" -name '*.ko*' -exec cp {} "$dir/" \;
		rm -rf "$tmp"
		for f in "$dir"/*.xz; do
			[ -e "$f" ] && xz -d "$f"
		done
		touch "$dir/.done"
	fi
	echo "$dir"
}
