# shellcheck shell=bash
# stall-storm: a stress-ng storm of growing heaps in a 512 MiB guest without
# swap; the kernel's OOM killer fires, but only after long freezes. Reports
# the worst heartbeat gap, the kills and whether the bystander lived.
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh
stall_setup_guard
secs=$(knob storm_s 35)
# shellcheck disable=SC2046
stall_run $((secs + 30)) stress-ng $(knob storm_args "--bigheap 2 --brk 1") --timeout "${secs}s"
