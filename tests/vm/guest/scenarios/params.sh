#!/bin/bash
# params: the oom_ext.* values from the kernel command line are in effect,
# and the guard started in the initrd lives on in the real root.
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
report_sysctls
report_status status
report_mode
report_guard
result kernel_panic "$(cat /proc/sys/kernel/panic)"
result params_file "$(tr '\n' ' ' < /run/oom-ext/params 2>/dev/null)"
report_status_json
