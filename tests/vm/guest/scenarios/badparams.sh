#!/bin/bash
# badparams: bad oom_ext.* values on the command line. Boot must complete;
# each bad value must be named in one log line; the defaults apply.
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
for key in $OOM_EXT_KEYS; do
	value=$(cmdline_value "oom_ext.$key")
	[ -n "$value" ] || continue
	# The kernel's own "Kernel command line:" echo does not count.
	matches=$(journalctl -b -o cat --no-pager | grep -F "oom_ext.$key=" | grep -v 'ommand line')
	result "badlog_count.$key" "$(printf '%s' "$matches" | grep -c .)"
	result "badlog.$key" "$(printf '%s\n' "$matches" | head -n 1)"
done
report_sysctls
report_status status
report_mode
