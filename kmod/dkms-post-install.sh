#!/bin/sh
# dkms POST_INSTALL hook: put the freshly installed oom_ext.ko into the
# initramfs of kernel $1, with the initramfs tool this machine uses.
# Never fails the dkms install: a problem is reported in one line.
kver=${1:?usage: dkms-post-install.sh KERNELVERSION}

# Inside a kernel package's postinst the initramfs hook runs after dkms.
if [ -n "${DEB_MAINT_PARAMS:-}" ]; then
	echo "oom_ext: initramfs for $kver is built next by the kernel package"
	exit 0
fi

if command -v update-initramfs >/dev/null 2>&1; then
	if [ -e "/boot/initrd.img-$kver" ]; then
		update-initramfs -u -k "$kver" && exit 0
	else
		echo "oom_ext: no /boot/initrd.img-$kver yet, not rebuilding it"
		exit 0
	fi
elif command -v dracut >/dev/null 2>&1; then
	dracut -f --kver "$kver" && exit 0
elif command -v mkinitcpio >/dev/null 2>&1; then
	mkinitcpio -P && exit 0
else
	echo "oom_ext: no update-initramfs, dracut or mkinitcpio: initramfs of $kver not rebuilt"
	exit 0
fi
echo "oom_ext: rebuilding the initramfs of $kver failed; run your initramfs tool by hand"
exit 0
