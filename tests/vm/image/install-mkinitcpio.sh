#!/bin/bash
# Run inside a Debian 12 guest tree (chroot): install Arch's mkinitcpio from
# its source with meson (from PyPI: Debian 12's meson is too old), then port
# the few Arch paths it hard-codes to Debian's, the way a Debian packager of
# mkinitcpio would:
# - PATH=/usr/bin:/bin: Debian keeps kmod, blkid and switch_root in /usr/sbin;
# - /usr/lib/libkmod.so.2 and /etc/udev/hwdb.bin: Debian has them in
#   /usr/lib/x86_64-linux-gnu and /usr/lib/udev;
# - /usr/lib/initcpio/busybox (Arch's mkinitcpio-busybox): Debian's busybox.
# usage: install-mkinitcpio.sh SOURCE_DIR PYTHON_LIB_DIR
set -euo pipefail
src=$1 pylib=$2
export PYTHONPATH=$pylib PATH=$pylib/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PKG_CONFIG=$pylib/pkgconf/.bin/pkgconf PKG_CONFIG_PATH=/usr/share/pkgconfig
cd "$src"
python3 -m mesonbuild.mesonmain setup build --prefix=/usr --libdir=lib -Ddocs=false
python3 -m mesonbuild.mesonmain install -C build --quiet
sed -i 's|^export PATH="/usr/bin:/bin"$|export PATH="/usr/bin:/bin:/usr/sbin:/sbin"|' /usr/bin/mkinitcpio
grep -q '^export PATH="/usr/bin:/bin:/usr/sbin:/sbin"$' /usr/bin/mkinitcpio
ln -sf x86_64-linux-gnu/libkmod.so.2 /usr/lib/libkmod.so.2
ln -sf /usr/lib/udev/hwdb.bin /etc/udev/hwdb.bin
install -m 0755 /bin/busybox /usr/lib/initcpio/busybox
mkinitcpio --version
# The systemd hook names files of systemd 255+ and Arch's /usr/bin for what
# Debian 12 (systemd 252) keeps in /usr/sbin or does not have.
for tool in sulogin swapon swapoff; do
	[ -e "/usr/bin/$tool" ] || ln -s "/usr/sbin/$tool" "/usr/bin/$tool"
done
for missing in /usr/lib/systemd/systemd-executor /usr/lib/systemd/systemd-validatefs \
	/usr/lib/tmpfiles.d/20-systemd-stub.conf; do
	if [ ! -e "$missing" ]; then
		sed -i -e "\\#^ *$missing \\\\\$#d" -e "\\#^ *add_file \"$missing\"\$#d" /usr/lib/initcpio/install/systemd
		if grep -q "$missing" /usr/lib/initcpio/install/systemd; then
			echo "install-mkinitcpio: could not drop $missing from the systemd hook" >&2
			exit 1
		fi
	fi
done
