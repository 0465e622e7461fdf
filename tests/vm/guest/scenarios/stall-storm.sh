# shellcheck shell=bash
# stall-storm: a storm of growing heaps in a 512 MiB guest without swap:
# three hogs of 200 MiB each, restarted when killed. The kernel's OOM killer
# fires again and again, but only after long freezes. (stress-ng's --vm and
# --bigheap never reached OOM here under TCG within a minute.)
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh
stall_setup_guard
secs=$(knob storm_s 35)
stall_run $((secs + 30)) /bin/bash -c ". $SELF; stall_storm_body $secs $(knob storm_hogs 3) $(knob storm_mb 200)"
