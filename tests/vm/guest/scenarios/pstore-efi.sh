#!/bin/bash
# pstore-efi: the gracetime panic's kernel log through EFI variables (QEMU
# with OVMF). Nothing is configured for it: Debian's systemd-pstore.service
# wants modprobe@efi_pstore.service on every boot. First boot: the EFI and
# pstore facts, then a persistent OOM until the module panics. Second boot:
# what pstore, systemd-pstore and the report unit made of the records, and
# whether a second report archives anything again.
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
efivars=/sys/firmware/efi/efivars

# The variables efi_pstore writes: dump-type0-… (both kernels).
dump_vars() { find "$efivars" -maxdepth 1 -name 'dump-type*' 2>/dev/null | wc -l; }

report_efi() {
	result efi "$([ -d /sys/firmware/efi ] && echo 1 || echo 0)"
	result efivars "$(find "$efivars" -maxdepth 1 -type f 2>/dev/null | wc -l)"
	result dump_vars "$(dump_vars)"
	result efi_pstore_loaded "$([ -d /sys/module/efi_pstore ] && echo 1 || echo 0)"
	result pstore_backend "$(cat /sys/module/pstore/parameters/backend 2>/dev/null)"
}

if [ "$BOOT" = 1 ]; then
	report_efi
	result kernel_panic "$(cat /proc/sys/kernel/panic)"
	result boot_id "$(cat /proc/sys/kernel/random/boot_id)"
	report_mode
	report_status status_before
	# shellcheck disable=SC2086
	load hog $HOG_ARGS --timeout 600s
	sleep 240
	result no_reboot 1
	report_status status_late
	exit 1
fi

report_efi
archive=/var/lib/systemd/pstore
hist=/var/lib/oom-ext/history
result live_records "$(find /sys/fs/pstore -type f -printf '%f ' 2>/dev/null)"
result archived_records "$(find "$archive" -type f -printf '%P ' 2>/dev/null)"
result systemd_pstore "$(systemctl show -p ActiveState -p Result -p ConditionResult --value systemd-pstore.service | tr '\n' ' ')"
result report_log "$(journalctl -b -u oom-ext-report.service -o cat --no-pager | tr '\n' '|')"
# Every record that holds an oom_ext line, whole (for the parser's tests).
n=0
while IFS= read -r f; do
	grep -aqF 'oom_ext' "$f" || continue
	result "record.$n" "$f: $(head -c 16384 "$f" | tr '\n' '|')"
	n=$((n + 1))
done < <(find /sys/fs/pstore "$archive" -type f 2>/dev/null | sort)
result records_with_oom_ext "$n"
pstore_history() { grep -lF '"status":"pstore"' "$hist"/* 2>/dev/null; }
result history_count "$(find "$hist" -type f 2>/dev/null | wc -l)"
result history_pstore_count "$(pstore_history | wc -l)"
result history_pstore "$(pstore_history | xargs -r cat | tr '\n' '|')"
flag=$(cat /proc/sys/vm/oom_ext/crashflag_name 2>/dev/null || echo /oomflag)
result flag_left "$([ -e "$flag" ] && echo present || echo absent)"
# Found again (systemd-pstore's copies are this boot's): archived once only.
result report_again "$("$(oom_ext_bin)" report 2>&1 | tr '\n' '|')"
result history_count_again "$(find "$hist" -type f 2>/dev/null | wc -l)"
# What the firmware holds now. efivarfs lists the variables that were there
# when it was mounted (before systemd-pstore's unlinks erased them): mount
# it anew.
if umount "$efivars" && mount -t efivarfs efivarfs "$efivars"; then
	result dump_vars_now "$(dump_vars)"
fi
