# shellcheck shell=bash
# Helpers for scenario scripts (sourced). Scenario scripts report facts as
# `OOMTEST key=value` lines; the host side decides what passes.

result() { echo "OOMTEST $1=$2"; }

# result_file KEY FILE: a file's content on one line (newlines as '|'), or <missing>.
result_file() {
	if [ -r "$2" ]; then
		result "$1" "$(tr '\n' '|' < "$2" | sed 's/|$//')"
	else
		result "$1" "<missing>"
	fi
}

# status_get KEY: one key of the module's status file (empty if absent).
status_get() { sed -n "s/^$1=//p" /sys/kernel/oom_ext/status 2>/dev/null; }

# wait_until SECONDS COMMAND…: poll every 0.5 s; returns 1 on timeout.
wait_until() {
	local deadline=$(( $(date +%s) + $1 )); shift
	until "$@"; do
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.5
	done
}

# load NAME ARGS…: run a workload in its own transient unit, so the kernel's
# OOM kills hit it and not the harness (OOMPolicy=continue keeps the unit).
load() {
	local unit=$1; shift
	systemd-run --quiet --unit="$unit" -p OOMPolicy=continue -p OOMScoreAdjust=500 "$@"
}

# Journal lines of this boot matching a pattern (for log assertions).
journal_grep() { journalctl -b -o cat --no-pager | grep -E "$1"; }

# shellcheck disable=SC2034 # used by the scenario scripts
OOM_EXT_KEYS="bufsize gracetime resettime crashflag crashflag_name"

report_sysctls() {
	local key
	for key in $OOM_EXT_KEYS; do
		result "sysctl.$key" "$(cat "/proc/sys/vm/oom_ext/$key" 2>/dev/null || echo '<missing>')"
	done
}

# report_status PREFIX: every key of the module status as PREFIX.key.
report_status() {
	local k v
	if [ ! -r /sys/kernel/oom_ext/status ]; then
		result "$1.state" "<no module status>"
		return
	fi
	while IFS='=' read -r k v; do
		[ -n "$k" ] && result "$1.$k" "${v%% *}"
	done < /sys/kernel/oom_ext/status
}

report_mode() {
	result mode "$(cat /run/oom-ext/mode 2>/dev/null || echo '<no /run/oom-ext/mode>')"
}

oom_ext_bin() { command -v oom-ext || echo /usr/sbin/oom-ext; }

report_status_json() {
	result status_json "$("$(oom_ext_bin)" status --json 2>&1 | tr '\n' ' ')"
}

# Seconds since boot at which a process started (field 22 of /proc/PID/stat).
proc_start_s() {
	local stat rest
	stat=$(cat "/proc/$1/stat") || return 1
	rest=${stat##*) }
	# shellcheck disable=SC2086
	set -- $rest
	awk -v t="${20}" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# The guard: alive, alone, re-anchored in the real root, started in the initrd?
report_guard() {
	local pid n
	pid=$(cat /run/oom-ext/guard.pid 2>/dev/null)
	result guard_pid "${pid:-<no /run/oom-ext/guard.pid>}"
	if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
		result guard_alive 1
		result guard_root "$(readlink "/proc/$pid/root")"
		result guard_cwd "$(readlink "/proc/$pid/cwd")"
		result guard_exe "$(readlink "/proc/$pid/exe")"
		result guard_cmdline "$(tr '\0' ' ' < "/proc/$pid/cmdline")"
		result guard_start_s "$(proc_start_s "$pid")"
		result guard_vmlck_kb "$(awk '/^VmLck/ {print $2}' "/proc/$pid/status")"
		result guard_rss_kb "$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"
		result guard_oom_score_adj "$(cat "/proc/$pid/oom_score_adj")"
	else
		result guard_alive 0
	fi
	# Every oom-ext process (comm is the binary's name), this script's children aside.
	n=$(pgrep -c -x oom-ext)
	result guard_count "$n"
	# The real root's init announces itself last (a systemd initrd announces itself first).
	result realroot_start_s "$(dmesg | grep 'running in system mode' | tail -n 1 | sed 's/^\[ *\([0-9.]*\)\].*/\1/')"
}

# What a boot applied: sysctls, module status, mode, guard, kernel.panic and
# the params init saved (the params and initrd scenarios).
report_boot_facts() {
	report_sysctls
	report_status status
	report_mode
	report_guard
	result kernel_panic "$(cat /proc/sys/kernel/panic)"
	result params_file "$(tr '\n' ' ' < /run/oom-ext/params 2>/dev/null)"
	report_status_json
}

# The value given for a key on the kernel command line (last occurrence), or empty.
cmdline_value() {
	local arg value=
	# shellcheck disable=SC2013 # the command line is words, not lines
	for arg in $(cat /proc/cmdline); do
		case $arg in "$1="*) value=${arg#"$1="} ;; esac
	done
	printf '%s' "$value"
}

vmstat() { awk -v k="$1" '$1 == k {print $2}' /proc/vmstat; }

# Memory hog for OOM storms: more anonymous memory than the 512 MiB guest has
# (--vm-bytes is the total, shared by the workers), kept resident; stress-ng
# restarts the workers the OOM killer takes.
# shellcheck disable=SC2034 # used by the scenario scripts
HOG_ARGS="stress-ng --vm 6 --vm-bytes 1200M --vm-keep --vm-populate"

# The last lines a workload unit printed (why it did what it did).
unit_log() { journalctl -b -u "$1" -o cat --no-pager | tail -n "${2:-4}" | tr '\n' '|'; }

unit_active() { systemctl is-active --quiet "$1"; }
unit_done() { ! unit_active "$1"; }

# watch_flag FLAG: background sampler (shell builtins only, so it keeps going
# under memory pressure). Reports the first time the flag is seen while the
# module is in the oom state, with the flag's content, and each state change.
watch_flag() {
	local flag=$1 k v state last='' seen=0 any=0 lines
	exec 8<> <(:)
	while :; do
		state=
		if [ -r /sys/kernel/oom_ext/status ]; then
			while IFS='=' read -r k v; do
				[ "$k" = state ] && state=${v%% *}
			done < /sys/kernel/oom_ext/status
		fi
		if [ "$state" != "$last" ]; then
			echo "OOMTEST state_change=$last->$state"
			last=$state
		fi
		if [ $any = 0 ] && [ -e "$flag" ]; then
			echo "OOMTEST flag_seen=1"
			any=1
		fi
		if [ $seen = 0 ] && [ "$state" = oom ] && [ -f "$flag" ]; then
			mapfile -t lines < "$flag"
			echo "OOMTEST flag_seen_in_oom=1"
			local IFS='|'
			echo "OOMTEST flag_content=${lines[*]}"
			unset IFS
			seen=1
		fi
		read -r -t 0.2 -u 8 _
	done
}

state_is() { [ "$(status_get state)" = "$1" ]; }
state_is_not() { [ "$(status_get state)" != "$1" ]; }

# Issue 17, cgroup OOMs: a hog in a unit with MemoryMax=64M is killed by its
# cgroup's OOM killer (vmstat's oom_kill counts it too). The guard must count
# it as a cgroup kill and must not take it for a system OOM (no OOM state,
# no release, no kill, no flag). --oomable: stress-ng does not respawn the
# worker the OOM killer took.
# (Last in a scenario: it adds an OOM kill to the boot.)
memcg_lines() { dmesg | grep -c 'Memory cgroup out of memory: Killed process'; }
guard_counted() { grep -q '^memcg_kills=[1-9]' /run/oom-ext/guard.state; }
report_memcg_kill() {
	local kills_before lines_before flag textfile
	kills_before=$(vmstat oom_kill)
	lines_before=$(memcg_lines)
	result memcg_hog "$(timeout 120 systemd-run --quiet --wait --unit=memhog -p MemoryMax=64M -p MemorySwapMax=0 \
		stress-ng --vm 1 --vm-bytes 256M --vm-keep --vm-populate --oomable --timeout 20s 2>&1 | tr '\n' '|')"
	result memcg_hog_result "$(systemctl show -P Result memhog 2>/dev/null)"
	wait_until 10 guard_counted
	# Past the guard's wait for a kill line (200 ms): an unexplained rise would
	# have been acted on by now.
	sleep 2
	result memcg_vmstat_rise "$(( $(vmstat oom_kill) - kills_before ))"
	result memcg_lines "$(( $(memcg_lines) - lines_before ))"
	# The kernel's own lines, for the unit tests (kernel_text.rs).
	result memcg_kmsg "$(dmesg | grep -E 'oom-kill:constraint=CONSTRAINT_MEMCG|Memory cgroup out of memory' | tail -n 2 | tr '\n' '|')"
	result memcg_guard_state "$(tr '\n' ' ' < /run/oom-ext/guard.state)"
	# Kernel mode: the module's OOM notifier never ran (empty in fallback mode).
	result memcg_module_oom_calls "$(status_get oom_calls)"
	result memcg_status_json "$("$(oom_ext_bin)" status --json 2>&1 | tr '\n' ' ')"
	result memcg_status_text "$("$(oom_ext_bin)" status 2>&1 | grep -E '^(state|counters|cgroup OOMs):' | tr '\n' '|')"
	textfile=$(mktemp -d)
	"$(oom_ext_bin)" status --textfile "$textfile" > /dev/null 2>&1
	result memcg_prom "$(grep -E '^oom_ext_(memcg_kills|oom_events|kills)_total ' "$textfile/oom_ext.prom" | tr '\n' '|')"
	result memcg_guard_log "$(journalctl -b -o short-monotonic --no-pager | grep -E 'oom-ext\[[0-9]+\]: .*(cgroup OOM|OOM state entered|killing a victim|module state .* -> oom)' | tr '\n' '|')"
	flag=$(sed -n 's/^crashflag_name=//p' /run/oom-ext/params 2>/dev/null)
	if [ -e "${flag:-/oomflag}" ]; then result memcg_flag present; else result memcg_flag absent; fi
}
