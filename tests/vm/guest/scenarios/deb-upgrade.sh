#!/bin/bash
# deb-upgrade: a guest with the oom-ext "previous build" package installed by
# apt-get boots (the initrd facts), then upgrades to the real build with
# `apt-get install ./oom-ext_….deb`: the guard must run the new binary
# afterwards (restarted by the package) and the initramfs of this kernel
# must hold the new binary.
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
report_boot_facts
debs=/var/lib/oomtest-debs
new_sha=$(sed -n 's/^new_sha=//p' "$debs/facts")
new_deb=$(sed -n 's/^new_deb=//p' "$debs/facts")
result new_sha "$new_sha"
result before_sha "$(sha256sum /usr/sbin/oom-ext | cut -d' ' -f1)"
log=/var/tmp/deb-upgrade.log
(cd "$debs" && DEBIAN_FRONTEND=noninteractive apt-get install -y "./$new_deb") > "$log" 2>&1
result upgrade_rc $?
result upgrade_log "$(tail -n 4 "$log" | tr '\n' '|')"
result installed_version "$(dpkg-query -W -f '${Version}' oom-ext)"
result installed_sha "$(sha256sum /usr/sbin/oom-ext | cut -d' ' -f1)"
pid=$(cat /run/oom-ext/guard.pid 2>/dev/null)
result upgraded_guard_pid "${pid:-none}"
if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
	result upgraded_guard_exe "$(readlink "/proc/$pid/exe")"
	result upgraded_guard_sha "$(sha256sum "/proc/$pid/exe" | cut -d' ' -f1)"
fi
result upgraded_guard_count "$(pgrep -c -x oom-ext)"
result upgraded_unit "$(systemctl is-active oom-ext-guard.service)"
d=$(mktemp -d)
unmkinitramfs "/boot/initrd.img-$(uname -r)" "$d" > /dev/null 2>&1
f=$(find -L "$d" -path '*/usr/sbin/oom-ext' -type f | head -n 1)
result initrd_sha "$([ -n "$f" ] && sha256sum "$f" | cut -d' ' -f1)"
rm -rf "$d"
