#!/bin/bash
# symlink: another user pre-creates the crash-flag path as a symlink, once
# dangling (would create a file elsewhere) and once to an existing root-owned
# file (would overwrite it). Entering the OOM state must follow neither.
# In kernel mode the module writes the flag; in fallback mode the guard does
# (only round 1 then: the path cannot be changed at run time without the module).
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
evil=4242
echo precious > /etc/oomtarget
before=$(sha256sum < /etc/oomtarget)
report_mode
mode=$(cat /run/oom-ext/mode 2>/dev/null)

# The path in effect: the module's sysctl, or what init decided (fallback).
flag1=$(cat /proc/sys/vm/oom_ext/crashflag_name 2>/dev/null ||
	sed -n 's/.*\bcrashflag_name=\([^ ]*\).*/\1/p' /run/oom-ext/params)
result flag1 "$flag1"
setpriv --reuid=$evil --regid=$evil --clear-groups ln -s /etc/oom-ext-pwned "$flag1"
flag2=/var/tmp/oomflag2
setpriv --reuid=$evil --regid=$evil --clear-groups ln -s /etc/oomtarget "$flag2"

oom_events() {
	if [ "$mode" = kernel ]; then
		status_get oom_events
	else
		"$(oom_ext_bin)" status --json | sed -n 's/.*"oom_events":\([0-9]*\).*/\1/p'
	fi
}

enter_oom() {
	if echo 1 > /sys/kernel/oom_ext/trigger; then
		result "trigger.$1" ok
	else
		result "trigger.$1" "failed, using a memory storm"
		# shellcheck disable=SC2086
		load "hog$1" $HOG_ARGS --timeout 15s
		wait_until 120 unit_done "hog$1"
	fi
}

# Round 1: the path from the command line, a dangling symlink.
enter_oom 1
sleep 2
report_status status_during
result oom_events_1 "$(oom_events)"
wait_until 60 state_is_not oom || result round1_stuck_in_oom 1

# Round 2 (kernel mode): a symlink to an existing file, set at run time.
if echo "$flag2" > /proc/sys/vm/oom_ext/crashflag_name; then
	result round2 run
	enter_oom 2
	sleep 2
	report_status status_during2
	wait_until 60 state_is_not oom || result round2_stuck_in_oom 1
else
	result round2 "skipped: no crashflag_name sysctl (mode $mode)"
fi

if [ "$(sha256sum < /etc/oomtarget)" = "$before" ]; then
	result target_unchanged 1
else
	result target_unchanged 0
fi
if [ -L "$flag1" ] && [ "$(readlink "$flag1")" = /etc/oom-ext-pwned ] && [ "$(stat -c %u "$flag1")" = $evil ] &&
	[ -L "$flag2" ] && [ "$(readlink "$flag2")" = /etc/oomtarget ]; then
	result link_unchanged 1
else
	result link_unchanged 0
	result links_now "$(stat -c '%N uid=%u' "$flag1" "$flag2" 2>&1 | tr '\n' '|')"
fi
if [ -e /etc/oom-ext-pwned ]; then result created_elsewhere 1; else result created_elsewhere 0; fi
result refusal_log "$(journalctl -b -o short-monotonic --no-pager | grep -iE 'oom.ext.*(symlink|ELOOP|refus|not follow|exists)' | head -n 2 | tr '\n' '|')"
