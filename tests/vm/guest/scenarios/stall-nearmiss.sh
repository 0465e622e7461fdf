# shellcheck shell=bash
# stall-nearmiss: a job that peaks a few per cent of RAM below the limit
# (no swap), holds for 20 s and exits by itself: nothing needs to die.
# oomtest.nearmiss_mode=active (keeps writing its memory), hold, or both
# (one job of each kind, one after the other).
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh
stall_setup_guard
secs=$(knob nearmiss_s 20)
runs=1
[ "$(knob nearmiss_mode active)" = both ] && runs=2
stall_run $(((secs + 60) * runs)) /bin/bash -c ". $SELF; stall_nearmiss_body $secs $(knob nearmiss_below 6) $(knob nearmiss_mode active)"
