#!/bin/sh
# mmdebstrap --customize-hook for the base guest tree: $1 is the tree.
# Makes the guest boot fast under QEMU/TCG and behave the same every time.
set -eu
root=$1

echo oomtest > "$root/etc/hostname"
# Root on the virtio disk; no fsck pass (images are made fresh by mke2fs).
echo '/dev/vda / ext4 rw,errors=remount-ro 0 0' > "$root/etc/fstab"
chroot "$root" passwd -d root >/dev/null

# Timers and services that only cost time in a 1-CPU TCG guest, and the
# peers (earlyoom, nohang, systemd-oomd), installed for side-by-side runs in
# the benchmark but which must not act unless a run asks for one.
for unit in apt-daily.timer apt-daily-upgrade.timer man-db.timer \
	e2scrub_all.timer e2scrub_reap.service fstrim.timer dpkg-db-backup.timer \
	systemd-timesyncd.service earlyoom.service nohang.service \
	nohang-desktop.service systemd-oomd.service systemd-oomd.socket getty@tty1.service \
	serial-getty@ttyS0.service; do
	ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# A persistent journal: the report scenarios read the previous boot.
mkdir -p "$root/var/log/journal"

# No swap anywhere: the OOM scenarios depend on it.
# Fast, quiet dkms and initramfs rebuilds later on: one compressor, no fsync.
mkdir -p "$root/etc/initramfs-tools/conf.d"
echo 'COMPRESS=zstd' > "$root/etc/initramfs-tools/conf.d/oomtest"
