# shellcheck shell=bash
# stall-swapleak: a leak into swap on a slow, throttled second disk
# (/dev/vdc, given by the host; vdb is the harness disk): no OOM for a long time, only freezes while
# pages crawl to and from the disk.
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh
if [ ! -b /dev/vdc ]; then
	result error "no /dev/vdc: the host did not attach the swap disk"
	exit 1
fi
mkswap -q /dev/vdc >/dev/null && swapon /dev/vdc
result swapon_rc $?
stall_setup_guard
secs=$(knob leak_s 60)
stall_run $((secs + 30)) /bin/bash -c ". $SELF; stall_leak_body $secs $(knob leak_rate 8)"
