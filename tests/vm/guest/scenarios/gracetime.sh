#!/bin/bash
# gracetime: a persistent OOM with oom_ext.gracetime=20. First boot: start the
# storm and wait for the module's panic (or, in fallback mode, the guard's
# sync and reboot) to reboot the guest. Second boot: the report unit must
# have reported the previous boot's OOM hang.
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
if [ "$BOOT" = 1 ]; then
	result kernel_panic "$(cat /proc/sys/kernel/panic)"
	result boot_id "$(cat /proc/sys/kernel/random/boot_id)"
	report_mode
	report_status status_before
	# shellcheck disable=SC2086
	load hog $HOG_ARGS --timeout 600s
	sleep 240
	# Still here: no reboot happened.
	result no_reboot 1
	report_status status_late
	exit 1
fi
result report_log "$(journalctl -b -u oom-ext-report.service -o cat --no-pager | tr '\n' '|')"
hist=/var/lib/oom-ext/history
result history_count "$(find "$hist" -type f 2>/dev/null | wc -l)"
latest=$(find "$hist" -type f -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -n 1 | cut -d' ' -f2-)
result history_latest "$( [ -n "$latest" ] && tr '\n' '|' < "$latest")"
flag=$(cat /proc/sys/vm/oom_ext/crashflag_name 2>/dev/null || echo /oomflag)
if [ -e "$flag" ]; then
	result flag_left present
	# Who left it: a new OOM state in this boot, or a report that failed.
	result flag_left_content "$(head -c 2000 "$flag" | tr '\n' '|')"
	report_status status_now
	result guard_log_now "$(journalctl -b -o cat --no-pager -t oom-ext 2>/dev/null | tail -n 12 | tr '\n' '|')"
	result module_log_now "$(journalctl -b -k -o cat --no-pager | grep -F oom_ext | tail -n 12 | tr '\n' '|')"
else
	result flag_left absent
fi
"$(oom_ext_bin)" report >/dev/null 2>&1
result report_rc_now $?
