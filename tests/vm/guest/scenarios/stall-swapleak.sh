# shellcheck shell=bash
# stall-swapleak: a leak into swap on a slow, throttled second disk
# (/dev/vdb, given by the host): no OOM for a long time, only freezes while
# pages crawl to and from the disk.
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh
if [ ! -b /dev/vdb ]; then
	result error "no /dev/vdb: the host did not attach the swap disk"
	exit 1
fi
mkswap -q /dev/vdb >/dev/null && swapon /dev/vdb
result swapon_rc $?
stall_setup_guard
secs=$(knob leak_s 60)
stall_run $((secs + 30)) /bin/bash -c ". $SELF; stall_leak_body $secs $(knob leak_rate 8)"
