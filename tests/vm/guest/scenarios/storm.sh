#!/bin/bash
# storm: stress-ng memory hogs beyond RAM (no swap) for 30 s. The module must
# release the buffer, the flag must exist during the OOM state and be gone
# after it, and the buffer must be re-armed after resettime (20 s here).
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
flag=$(cat /proc/sys/vm/oom_ext/crashflag_name 2>/dev/null || echo /oomflag)
kills_before=$(vmstat oom_kill)
# The guard's own kills (pidfd, policy) do not count in vmstat's oom_kill.
guard_victims() { sed -n 's/^victims=//p' /run/oom-ext/guard.state 2>/dev/null | grep -x '[0-9]*' || echo 0; }
victims_before=$(guard_victims)
report_status status_before
watch_flag "$flag" &
watcher=$!

# shellcheck disable=SC2086
load hog $HOG_ARGS --timeout 30s
wait_until 150 unit_done hog
result storm_over 1
result hog_log "$(unit_log hog)"
result oom_kills $(( $(vmstat oom_kill) - kills_before ))
result guard_victims $(( $(guard_victims) - victims_before ))
report_status status_storm

if [ ! -r /sys/kernel/oom_ext/status ]; then
	# No module (the demo's bare guest): nothing to wait for.
	result module_loaded 0
	kill "$watcher"
	exit 0
fi
if wait_until 60 state_is_not oom; then result left_oom 1; else result left_oom 0; fi
if [ -e "$flag" ]; then result flag_after present; else result flag_after absent; fi
rearmed_once() { [ "$(status_get state)" = armed ] && [ "$(status_get rearms)" -ge 1 ]; }
if wait_until 60 rearmed_once; then
	result rearmed 1
else
	result rearmed 0
fi
kill "$watcher"
report_status status_after
result mem_available_kb "$(awk '/^MemAvailable/ {print $2}' /proc/meminfo)"
