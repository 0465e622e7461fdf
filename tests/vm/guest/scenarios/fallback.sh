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

# Issue 17, cgroup OOMs: a hog in a unit with MemoryMax=64M is killed by its
# cgroup's OOM killer (vmstat's oom_kill counts it too). The guard must count
# it as a cgroup kill and must not take it for a system OOM (no OOM state,
# no release, no kill, no flag). --oomable: stress-ng does not respawn the
# worker the OOM killer took.
kills_before=$(vmstat oom_kill)
memcg_lines() { dmesg | grep -c 'Memory cgroup out of memory: Killed process'; }
lines_before=$(memcg_lines)
result memcg_hog "$(timeout 120 systemd-run --quiet --wait --unit=memhog -p MemoryMax=64M -p MemorySwapMax=0 \
	stress-ng --vm 1 --vm-bytes 256M --vm-keep --vm-populate --oomable --timeout 20s 2>&1 | tr '\n' '|')"
result memcg_hog_result "$(systemctl show -P Result memhog 2>/dev/null)"
guard_counted() { grep -q '^memcg_kills=[1-9]' /run/oom-ext/guard.state; }
wait_until 10 guard_counted
# Past the guard's wait for a kill line (200 ms): an unexplained rise would
# have been acted on by now.
sleep 2
result memcg_vmstat_rise "$(( $(vmstat oom_kill) - kills_before ))"
result memcg_lines "$(( $(memcg_lines) - lines_before ))"
# The kernel's own lines, for the unit tests (kernel_text.rs).
result memcg_kmsg "$(dmesg | grep -E 'oom-kill:constraint=CONSTRAINT_MEMCG|Memory cgroup out of memory' | tail -n 2 | tr '\n' '|')"
result memcg_guard_state "$(tr '\n' ' ' < /run/oom-ext/guard.state)"
result memcg_status_json "$("$(oom_ext_bin)" status --json 2>&1 | tr '\n' ' ')"
result memcg_status_text "$("$(oom_ext_bin)" status 2>&1 | grep -E '^(state|counters|cgroup OOMs):' | tr '\n' '|')"
textfile=$(mktemp -d)
"$(oom_ext_bin)" status --textfile "$textfile" > /dev/null 2>&1
result memcg_prom "$(grep -E '^oom_ext_(memcg_kills|oom_events|kills)_total ' "$textfile/oom_ext.prom" | tr '\n' '|')"
result memcg_guard_log "$(journalctl -b -o short-monotonic --no-pager | grep -E 'oom-ext\[[0-9]+\]: .*(cgroup OOM|OOM state entered|killing a victim)' | tr '\n' '|')"
flag=$(sed -n 's/^crashflag_name=//p' /run/oom-ext/params 2>/dev/null)
if [ -e "${flag:-/oomflag}" ]; then result memcg_flag present; else result memcg_flag absent; fi
