#!/bin/bash
# fallback: the module is refused (module_blacklist=oom_ext); the userspace
# guard must hold the buffer itself and the boot must complete.
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
if grep -q '^oom_ext ' /proc/modules; then result module_loaded 1; else result module_loaded 0; fi
report_mode
report_guard
report_status_json
# (-o short: kernel-log lines keep their "oom-ext[PID]:" tag there)
result fallback_log "$(journalctl -b -o short-monotonic --no-pager | grep -iE 'oom-ext.*(fallback|blacklist|not permitted|refused)' | head -n 1)"
result system_state "$(systemctl is-system-running 2>/dev/null)"

# Issue 17: a cgroup's OOM kill is counted, and no system OOM.
report_memcg_kill
