#!/bin/bash
# gracetime: a persistent OOM with oom_ext.gracetime=20. First boot: start the
# storm and wait for the module's panic (or, in fallback mode, the guard's
# sync and reboot) to reboot the guest. Second boot: the report unit must
# have reported the previous boot's OOM hang.
#
# With oomtest.onhang on the command line (issue 17, on_hang=mask-unit):
# the storm is a service enabled at boot (it waits for /run/oomtest-go), so
# the second boot hangs the same way; the third boot must come up with that
# unit masked by oom-ext-on-hang.service, and `oom-ext on-hang undo` must
# unmask it.
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
leak=oomtest-leak.service
onhang=0
grep -qw oomtest.onhang /proc/cmdline && onhang=1

start_storm() {
	if [ "$onhang" = 1 ]; then
		touch /run/oomtest-go
	else
		# shellcheck disable=SC2086
		load hog $HOG_ARGS --timeout 600s
	fi
}

wait_for_reboot() {
	sleep 240
	# Still here: no reboot happened.
	result no_reboot 1
	report_status status_late
	exit 1
}

onhang_facts() {
	# The whole boot's journal: a line of a process that exits at once may
	# reach journald without its unit (journalctl -u misses it).
	result onhang_log "$(journalctl -b -o cat --no-pager | grep -F 'on_hang=' | tr '\n' '|')"
	result onhang_record "$(tr '\n' '|' < /run/oom-ext/on-hang 2>/dev/null)"
	result leak_load "$(systemctl show -P LoadState "$leak")"
	result leak_active "$(systemctl show -P ActiveState "$leak")"
	result leak_started "$(journalctl -b -u "$leak" -o cat --no-pager | grep -c 'oomtest-leak: waiting')"
}

if [ "$BOOT" = 1 ]; then
	result kernel_panic "$(cat /proc/sys/kernel/panic)"
	result boot_id "$(cat /proc/sys/kernel/random/boot_id)"
	result onhang "$onhang"
	report_mode
	report_status status_before
	if [ "$onhang" = 1 ]; then
		printf 'on_hang = mask-unit\n' > /etc/oom-ext/policy.conf
		# In /etc, as an admin's unit is: a mask in /run/systemd/system
		# would lose to it.
		cat > "/etc/systemd/system/$leak" <<-UNIT
		[Unit]
		Description=oomtest: a service that leaks on every boot
		[Service]
		ExecStart=/bin/sh -c 'echo oomtest-leak: waiting; until [ -e /run/oomtest-go ]; do sleep 1; done; exec $HOG_ARGS --timeout 600s'
		OOMPolicy=continue
		OOMScoreAdjust=500
		[Install]
		WantedBy=multi-user.target
		UNIT
		systemctl daemon-reload
		systemctl enable --now "$leak" 2>/dev/null
		sync
	fi
	start_storm
	wait_for_reboot
fi
if [ "$BOOT" = 3 ]; then
	result boot_id "$(cat /proc/sys/kernel/random/boot_id)"
	onhang_facts
	result mask "$(readlink /run/systemd/system.control/$leak)"
	report_status_json
	result status_text "$("$(oom_ext_bin)" status | tr '\n' '|')"
	result report_log "$(journalctl -b -u oom-ext-report.service -o cat --no-pager | tr '\n' '|')"
	latest=$(find /var/lib/oom-ext/history -type f -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -n 1 | cut -d' ' -f2-)
	result history_latest "$( [ -n "$latest" ] && tr '\n' '|' < "$latest")"
	undo=$("$(oom_ext_bin)" on-hang undo 2>&1)
	result undo_rc $?
	result undo_out "$(printf '%s' "$undo" | tr '\n' '|')"
	result leak_load_after "$(systemctl show -P LoadState "$leak")"
	result mask_after "$(readlink /run/systemd/system.control/$leak || echo absent)"
	result undo_log "$(journalctl -b -o cat --no-pager | grep -F 'on_hang undone' | tr '\n' '|')"
	exit 0
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
if [ "$onhang" = 1 ]; then
	result boot_id2 "$(cat /proc/sys/kernel/random/boot_id)"
	onhang_facts
	start_storm
	wait_for_reboot
fi
