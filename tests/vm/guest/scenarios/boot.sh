#!/bin/bash
# boot: the guest reached the harness; report what the kernel and initrd were.
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
result uname_r "$(uname -r)"
result system_state "$(systemctl is-system-running 2>/dev/null)"
result failed_units "$(systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"
result mem_total_kb "$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
result swap_total_kb "$(awk '/^SwapTotal/ {print $2}' /proc/meminfo)"
result analyze "$(systemd-analyze 2>&1 | head -n 1)"
result blame "$(systemd-analyze blame 2>&1 | head -n 8 | tr -s ' ' | tr '\n' '|')"
