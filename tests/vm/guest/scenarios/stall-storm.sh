# shellcheck shell=bash
# stall-storm: a stress-ng storm of growing heaps in a 512 MiB guest without
# swap; the kernel's OOM killer fires, but only after long freezes. Reports
# the worst heartbeat gap, the kills and whether the bystander lived.
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh
stall_setup_guard
secs=$(knob storm_s 35)
# oomtest.storm_args= takes commas for spaces (the command line splits on spaces).
args=$(knob storm_args "--vm,3,--vm-bytes,700M,--vm-keep")
# shellcheck disable=SC2086  # one word per argument
stall_run $((secs + 30)) stress-ng ${args//,/ } --timeout "${secs}s"
