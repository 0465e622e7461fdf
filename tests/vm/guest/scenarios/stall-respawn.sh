# shellcheck shell=bash
# stall-respawn: a leak of 150 % of RAM into 1 GiB of swap on a disk
# throttled to 4 MiB/s (/dev/vdc), started again after every kill, 120 s.
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh
if [ ! -b /dev/vdc ]; then
	result error "no /dev/vdc: the host did not attach the swap disk"
	exit 1
fi
mkswap -q /dev/vdc >/dev/null && swapon /dev/vdc
result swapon_rc $?
stall_setup_guard
secs=$(knob respawn_s 120)
mb=$(( $(awk '/^MemTotal/ {print $2}' /proc/meminfo) * 150 / 100 / 1024 ))
stall_run $((secs + 30)) /bin/bash -c ". $SELF; stall_respawn_body $secs $(knob leak_rate 8) $mb"
