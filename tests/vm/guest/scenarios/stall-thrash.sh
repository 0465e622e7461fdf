# shellcheck shell=bash
# stall-thrash: anonymous memory up to a few MiB of MemAvailable while a
# reader churns the page cache: the machine thrashes on program code and the
# kernel's OOM killer does not fire (the cache is always reclaimable).
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh
stall_setup_guard
secs=$(knob thrash_s 40)
stall_run $((secs + 30)) /bin/bash -c ". $SELF; stall_thrash_body $secs $(knob thrash_floor 8)"
