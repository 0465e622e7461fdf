# shellcheck shell=bash
# stall-gracetime: a persistent OOM (the gracetime scenario's storm) with
# oom_ext.gracetime=20 on the command line. A guard that reboots the machine
# ends boot 1; boot 2 reports whether the report unit named boot 1.
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh
if [ "$BOOT" = 1 ]; then
	result boot_id "$(cat /proc/sys/kernel/random/boot_id)"
	result kernel_panic "$(cat /proc/sys/kernel/panic)"
	stall_setup_guard
	secs=$(knob hang_s 150)
	stall_run $((secs + 30)) /bin/bash -c ". $SELF; stall_hang_body $secs"
	result no_reboot 1
	exit 0
fi
result report_log "$(journalctl -b -u oom-ext-report.service -o cat --no-pager | tr '\n' '|')"
