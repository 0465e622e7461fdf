#!/bin/bash
# initrd: same facts as params, for the other initrd flavours (issue 5).
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
report_sysctls
report_status status
report_mode
report_guard
result kernel_panic "$(cat /proc/sys/kernel/panic)"
result params_file "$(tr '\n' ' ' < /run/oom-ext/params 2>/dev/null)"
report_status_json
