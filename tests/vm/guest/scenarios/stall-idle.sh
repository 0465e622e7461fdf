# shellcheck shell=bash
# stall-idle: no workload; the guard's wake-ups, CPU time and RSS over 60 s
# on a calm machine.
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh
stall_setup_guard
stall_idle "$(knob idle_s 60)"
