# shellcheck shell=bash
# Shared by the stall-*.sh scenarios (issue 6; sourced, not a scenario).
#
# One stall run: pick the guard named by oomtest.guard= on the command line
# (none | earlyoom | oom_ext), start a heartbeat and an innocent bystander,
# each in its own unit at normal priority, run one workload in its own unit
# (OOMPolicy=continue), and report what happened as OOMTEST facts. The host
# (tests/vm/oomvm/stall.py) turns them into verdicts and tables.
#
# The heartbeat and the bystander run as bash through symlinks named
# `heartbeat` and `bystander` (the heartbeat's probe as `probe`), the workloads' hogs as perl through `hog` and
# `leaker`: the kernel takes a process's comm from the name it was executed
# by, so the kill lines in the kernel log say exactly who died.
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/lib.sh

STALL=/run/oomtest-stall
mkdir -p "$STALL"
for name in heartbeat bystander; do ln -sf /bin/bash "$STALL/$name"; done
ln -sf /bin/true "$STALL/probe"
for name in hog leaker; do ln -sf /usr/bin/perl "$STALL/$name"; done
SELF=/opt/oomtest/scenarios/stall-lib.sh

epoch_ms() { local t=${EPOCHREALTIME/[.,]/}; echo "${t:0:-3}"; }

# Heartbeat: every 100 ms, start a new program (fork + exec of
# /bin/true, as `probe`), then write the time in ms and the gap since the
# last beat to a file (read back by the scenario) and to the results
# channel (timestamped by the host, which does not freeze with the guest).
# Starting a program is what an operator's next command needs: fresh
# memory, page tables, the program's code. A loop of builtins alone kept
# its few hot pages and beat on through a swap leak that froze everything
# else (0.7 s worst gap with PSI some at 32 s).
stall_heartbeat() {
	local n=0 now prev gap out=/dev/hvc0
	[ -c "$out" ] || out=/dev/ttyS0
	exec 9<> <(:)
	exec 7>>"$STALL/heartbeat.log" 6>"$out"
	prev=${EPOCHREALTIME/[.,]/}
	while :; do
		read -r -t 0.1 -u 9 _
		"$STALL/probe"
		now=${EPOCHREALTIME/[.,]/}
		gap=$(( (now - prev) / 1000 ))
		prev=$now
		echo "${now:0:-3} $gap" >&7
		echo "OOMTEST hb $n gap_ms=$gap" >&6
		n=$((n + 1))
	done
}

# Bystander: a modest (16 MiB) long-lived process that must survive.
stall_bystander() {
	local big
	# shellcheck disable=SC2034  # held, never read: that is the point
	printf -v big '%*s' $((16 << 20)) ''
	exec 9<> <(:)
	while :; do read -r -t 1 -u 9 _; done
}

# perl memory hog, run as `$STALL/hog` or `$STALL/leaker` with
#   -e "$STALL_PERL" FAST_MB RATE FLOOR_MB MAX_MB
# Allocates and touches 1 MiB chunks: as fast as it can while MemAvailable is
# above FAST_MB, then at RATE MiB/s while it is above FLOOR_MB (0 = no floor),
# never more than MAX_MB in all; otherwise it holds what it has and looks
# again every 100 ms. With a floor the hog is greedy: memory that comes free
# (a released buffer) is eaten again, like an application that caches what
# it can. Without one it is a plain leak.
# shellcheck disable=SC2016  # perl code, not shell
STALL_PERL='
use strict; use warnings;
my ($fast, $rate, $floor, $max) = @ARGV;
sub avail_mb { open(my $f, "<", "/proc/meminfo") or return 1e9;
	while (<$f>) { return $1 / 1024 if /^MemAvailable:\s+(\d+)/ } 1e9 }
my @held; my $chunk = "x" x (1 << 20);
while (1) {
	my $avail = avail_mb();
	if (@held < $max && ($floor == 0 || $avail > $floor)) {
		my $c = $chunk; substr($c, $_ * 4096, 1) = "y" for 0 .. 255;
		push @held, $c;
		select(undef, undef, undef, 1 / $rate) if $avail <= $fast && $rate > 0;
	} else {
		select(undef, undef, undef, 0.1);
	}
}'

# stall_unit NAME ARGV…: a transient unit like the harness's `load`, but at
# the kernel's default oom_score_adj, so the victim is the kernel's own choice.
stall_unit() {
	local unit=$1; shift
	systemd-run --quiet --unit="$unit" -p OOMPolicy=continue "$@"
}

stall_setup_guard() {
	local guard
	guard=$(cmdline_value oomtest.guard)
	guard=${guard:-oom_ext}
	result guard "$guard"
	case $guard in
	earlyoom)
		systemctl unmask --quiet earlyoom.service
		systemctl start earlyoom.service
		wait_until 20 systemctl is-active --quiet earlyoom.service
		result earlyoom_active "$(systemctl is-active earlyoom.service)"
		result earlyoom_args "$(tr '\0' ' ' < "/proc/$(systemctl show -P MainPID earlyoom.service)/cmdline")"
		;;
	*)
		result earlyoom_active "$(systemctl is-active earlyoom.service)"
		;;
	esac
	report_mode
	result psi_param "$(sed -n 's/^psi=//p' /run/oom-ext/params 2>/dev/null)"
	result psi_trigger_params "$(grep '^psi_' /run/oom-ext/params 2>/dev/null | tr '\n' ' ')"
	local pid
	pid=$(cat /run/oom-ext/guard.pid 2>/dev/null)
	if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
		result guard_alive 1
		result guard_sched "$(awk '{print "policy=" $41 " rtprio=" $40 " nice=" $19}' "/proc/$pid/stat" 2>/dev/null)"
	else
		result guard_alive 0
	fi
	report_status status_before
}

# stall_run WORKLOAD_S COMMAND…: the whole run around one workload command.
stall_run() {
	local limit=$1; shift
	result mem_total_kb "$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
	result mem_available_kb "$(awk '/^MemAvailable/ {print $2}' /proc/meminfo)"
	result swap_total_kb "$(awk '/^SwapTotal/ {print $2}' /proc/meminfo)"
	stall_unit stall-heartbeat -p OOMScoreAdjust=0 "$STALL/heartbeat" -c ". $SELF; stall_heartbeat"
	stall_unit stall-bystander -p OOMScoreAdjust=0 "$STALL/bystander" -c ". $SELF; stall_bystander"
	# Let the bystander fill its 16 MiB and the boot's own work settle.
	sleep 5
	local by_pid kills_before start end rc
	by_pid=$(systemctl show -P MainPID stall-bystander.service)
	result bystander_pid "$by_pid"
	result bystander_rss_kb "$(awk '/^VmRSS/ {print $2}' "/proc/$by_pid/status" 2>/dev/null)"
	kills_before=$(vmstat oom_kill)
	start=$(epoch_ms)
	result stall_start_ms "$start"
	# --wait: block until the workload's unit is gone, however it ends.
	timeout $((limit + 120)) systemd-run --wait --unit=stall-workload -p OOMPolicy=continue \
		-p RuntimeMaxSec="$limit" "$@" > "$STALL/workload.out" 2>&1
	rc=$?
	end=$(epoch_ms)
	result stall_end_ms "$end"
	result workload_rc "$rc"
	result workload_s $(( (end - start) / 1000 ))
	# finished: the unit ended by itself or at its RuntimeMaxSec, and the
	# harness got it back within the bound (rc 124 = the bound was hit).
	if [ "$rc" -ne 124 ]; then result finished 1; else result finished 0; fi
	result workload_result "$(grep -o 'Finished with result: .*' "$STALL/workload.out" | head -n 1)"
	# Beats right after the end belong to the run too: a freeze can end late.
	sleep 3
	stall_report "$start" "$((end + 3000))" "$by_pid" "$kills_before"
}

stall_report() {
	local start=$1 end=$2 by_pid=$3 kills_before=$4 comm
	result worst_gap_ms "$(awk -v s="$start" -v e="$end" \
		'$1 > s && $1 - $2 < e && $2 > m { m = $2 } END { print m + 0 }' "$STALL/heartbeat.log")"
	# When it ended, in ms from the workload's start: read beside the
	# guard's timeline below, it says what the guard was doing meanwhile.
	result worst_gap_end_ms "$(awk -v s="$start" -v e="$end" \
		'$1 > s && $1 - $2 < e && $2 > m { m = $2; t = $1 - s } END { print t + 0 }' "$STALL/heartbeat.log")"
	# The same measure over the last 4 s before the workload: what the host's
	# own noise (a descheduled QEMU) does to a calm guest.
	result idle_gap_ms "$(awk -v s="$((start - 4000))" -v e="$start" \
		'$1 > s && $1 <= e && $2 > m { m = $2 } END { print m + 0 }' "$STALL/heartbeat.log")"
	result beats "$(awk -v s="$start" -v e="$end" '$1 > s && $1 <= e { n++ } END { print n + 0 }' "$STALL/heartbeat.log")"
	result gaps_over_1s "$(awk -v s="$start" -v e="$end" '$1 > s && $1 - $2 < e && $2 > 1000 { n++ } END { print n + 0 }' "$STALL/heartbeat.log")"
	result oom_kills $(( $(vmstat oom_kill) - kills_before ))
	# Who died: the kernel's OOM killer (also when oom-ext asks it with
	# sysrq f) and earlyoom's signals, as comm:pid, comma-separated.
	result kernel_kills "$(dmesg | sed -n 's/.*Killed process \([0-9]*\) (\([^)]*\)).*/\2:\1/p' | paste -sd, -)"
	result earlyoom_kills "$(journalctl -b -u earlyoom -o cat --no-pager 2>/dev/null |
		sed -n 's/.*sending SIG[A-Z]* to process \([0-9]*\) uid [0-9]* "\([^"]*\)".*/\2:\1/p' | sort -u | paste -sd, -)"
	result sysrq_kills "$(dmesg | grep -c 'sysrq: Manual OOM execution')"
	comm=$(cat "/proc/$by_pid/comm" 2>/dev/null)
	if [ "$comm" = bystander ]; then result bystander_alive 1; else result bystander_alive 0; fi
	if systemctl is-active --quiet stall-heartbeat.service; then result heartbeat_alive 1; else result heartbeat_alive 0; fi
	result psi_memory "$(tr '\n' '|' < /proc/pressure/memory)"
	# A freeze without memory stall: was it the CPU or the disk?
	result psi_cpu "$(tr '\n' '|' < /proc/pressure/cpu)"
	result psi_io "$(tr '\n' '|' < /proc/pressure/io)"
	result oom_calls "$(status_get oom_calls)"
	result swap_used_kb "$(awk '/^SwapTotal/ {t=$2} /^SwapFree/ {f=$2} END {print t-f}' /proc/meminfo)"
	result guard_state "$(tr '\n' ' ' < /run/oom-ext/guard.state 2>/dev/null)"
	report_status status_after
	result guard_log "$(journalctl -b -o cat --no-pager -t oom-ext 2>/dev/null | grep -iE 'stall|sysrq|OOM' | tail -n 8 | tr '\n' '|')"
	# The same lines stamped with ms from the workload's start (the guest's
	# clock, as the heartbeat's): a failed check prints them, so a CI log's
	# tail alone shows what the guard did around the freeze.
	result guard_timeline "$(journalctl -b -o short-unix --no-pager -t oom-ext 2>/dev/null |
		awk -v s="$start" '{ t = $1 * 1000 - s } t > -2000 { sub(/^[^ ]+ [^ ]+ [^ ]+ /, ""); printf "%+.0f %s|", t, $0 }' |
		head -c 2000)"
	result earlyoom_log "$(journalctl -b -u earlyoom -o cat --no-pager 2>/dev/null | grep -E 'low|sending' | head -n 4 | tr '\n' '|')"
	systemctl stop stall-heartbeat.service stall-bystander.service 2>/dev/null
}

# knob NAME DEFAULT: a workload setting, from oomtest.NAME= on the command
# line (so a run can be tuned without rebuilding the image), else DEFAULT.
knob() {
	local v
	v=$(cmdline_value "oomtest.$1")
	printf '%s' "${v:-$2}"
}

# Workload bodies, run inside the stall-workload unit.

# Storm: N hogs grow as fast as they can to MB MiB each (more than RAM in
# all) and hold it; each one the OOM killer takes is started again after
# half a second, so the machine runs from one OOM to the next.
stall_storm_body() {
	local seconds=$1 n=$2 mb=$3 i
	for ((i = 0; i < n; i++)); do
		(while :; do "$STALL/hog" -e "$STALL_PERL" 0 0 0 "$mb"; sleep 0.5; done) &
	done
	sleep "$seconds"
	# shellcheck disable=SC2046  # one word per pid
	kill $(jobs -p) 2>/dev/null
}

# Page-cache thrash: a greedy hog keeps MemAvailable at FLOOR_MB with
# anonymous memory while a reader streams the root disk (larger than RAM)
# through the page cache, so every program's code is evicted and read back.
stall_thrash_body() {
	local seconds=$1 floor=$2
	"$STALL/hog" -e "$STALL_PERL" $((floor + 48)) 8 "$floor" 1000000 &
	while :; do dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null; done &
	sleep "$seconds"
	# shellcheck disable=SC2046  # one word per pid
	kill $(jobs -p) 2>/dev/null
}

# Swap leak: fast to near the end of RAM, then RATE MiB/s into swap until
# the machine (or a guard) stops it.
stall_leak_body() {
	local seconds=$1 rate=$2
	"$STALL/leaker" -e "$STALL_PERL" 64 "$rate" 0 1000000 &
	sleep "$seconds"
	# shellcheck disable=SC2046  # one word per pid
	kill $(jobs -p) 2>/dev/null
}
