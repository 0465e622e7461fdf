# shellcheck shell=bash
# stall-forkstorm: a parent that forks another hog of 30 % of RAM every
# second, no swap, 35 s.
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh
stall_setup_guard
secs=$(knob forkstorm_s 35)
mb=$(( $(awk '/^MemTotal/ {print $2}' /proc/meminfo) * $(knob forkstorm_pct 30) / 100 / 1024 ))
stall_run $((secs + 30)) /bin/bash -c ". $SELF; stall_forkstorm_body $secs $mb"
