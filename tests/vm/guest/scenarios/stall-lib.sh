# shellcheck shell=bash
# Shared by the stall-*.sh scenarios (issue 6; sourced, not a scenario).
#
# One stall run: pick the guard named by oomtest.guard= on the command line
# (none | earlyoom | nohang | systemd-oomd | mglru | oom_ext), start a heartbeat and an innocent bystander,
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
for name in heartbeat bystander forker; do ln -sf /bin/bash "$STALL/$name"; done
ln -sf /bin/true "$STALL/probe"
for name in hog leaker job; do ln -sf /usr/bin/perl "$STALL/$name"; done
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

# systemd-oomd as Fedora's systemd-oomd-defaults sets it up: swap kill on
# the root slice, and (what Fedora puts on user@.service) a pressure kill at
# 50 % for 20 s on the slice the workload runs in. Runtime drop-ins: the image
# stays as built.
stall_setup_oomd() {
	mkdir -p /run/systemd/system/-.slice.d /run/systemd/system/stall.slice.d /run/systemd/oomd.conf.d
	printf '[Slice]\nManagedOOMSwap=kill\n' > /run/systemd/system/-.slice.d/10-oomd-root-slice-defaults.conf
	printf '[Slice]\nManagedOOMMemoryPressure=kill\nManagedOOMMemoryPressureLimit=50%%\n' \
		> /run/systemd/system/stall.slice.d/10-oomd-defaults.conf
	printf '[OOM]\nDefaultMemoryPressureDurationSec=20s\n' > /run/systemd/oomd.conf.d/10-oomd-defaults.conf
	systemctl unmask --quiet systemd-oomd.service systemd-oomd.socket
	systemctl daemon-reload
	systemctl start dbus.service systemd-oomd.socket systemd-oomd.service
	wait_until 20 systemctl is-active --quiet systemd-oomd.service
	result oomd_active "$(systemctl is-active systemd-oomd.service)"
}

# The main pid of each process the guard runs (none for the bare kernel and MGLRU).
stall_guard_pids() {
	case $1 in
	earlyoom | nohang | systemd-oomd) systemctl show -P MainPID "$1.service" | grep -v '^0$' ;;
	oom_ext*) cat /run/oom-ext/guard.pid 2>/dev/null ;;
	esac
}

stall_setup_guard() {
	local guard
	guard=$(cmdline_value oomtest.guard)
	guard=${guard:-oom_ext}
	STALL_GUARD=$guard
	result guard "$guard"
	case $guard in
	earlyoom | nohang)
		systemctl unmask --quiet "$guard.service"
		systemctl start "$guard.service"
		wait_until 20 systemctl is-active --quiet "$guard.service"
		result "${guard}_active" "$(systemctl is-active "$guard.service")"
		result "${guard}_args" "$(tr '\0' ' ' < "/proc/$(systemctl show -P MainPID "$guard.service")/cmdline")"
		;;
	systemd-oomd)
		stall_setup_oomd
		;;
	mglru)
		# The kernel's own thrashing protection (built into Debian's
		# kernels, off by default): two sysfs writes.
		if [ -w /sys/kernel/mm/lru_gen/enabled ]; then
			echo y > /sys/kernel/mm/lru_gen/enabled
			echo 1000 > /sys/kernel/mm/lru_gen/min_ttl_ms
		fi
		result lru_gen "$(cat /sys/kernel/mm/lru_gen/enabled 2>/dev/null || echo '<none>') min_ttl_ms=$(cat /sys/kernel/mm/lru_gen/min_ttl_ms 2>/dev/null)"
		;;
	esac
	result earlyoom_active "$(systemctl is-active earlyoom.service)"
	report_mode
	result psi_param "$(sed -n 's/^psi=//p' /run/oom-ext/params 2>/dev/null)"
	result psi_trigger_params "$(grep '^psi_' /run/oom-ext/params 2>/dev/null | tr '\n' ' ')"
	# Every parameter the guard runs with (the benchmark's tables record them:
	# a default may change between two runs).
	result params_file "$(tr '\n' ' ' < /run/oom-ext/params 2>/dev/null)"
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
	# Its own slice: systemd-oomd watches the pressure there.
	timeout $((limit + 120)) systemd-run --wait --unit=stall-workload --slice=stall.slice -p OOMPolicy=continue \
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
	# nohang logs a victim's status, then "Sending SIG… to the victim" if it
	# acts (it also logs the status when it then lets the victim be).
	result nohang_kills "$(journalctl -b -u nohang -o cat --no-pager 2>/dev/null |
		awk 'match($0, /PID: *[0-9]+, name: [^,]+,/) { split(substr($0, RSTART, RLENGTH), f, /[ ,:]+/); v = f[4] ":" f[2] }
			/Sending SIG[A-Z]+ to the victim/ && v != "" { print v; v = "" }' | sort -u | paste -sd, -)"
	# systemd-oomd kills a whole cgroup: the unit's name stands for the victim.
	result oomd_kills "$(journalctl -b -u systemd-oomd -o cat --no-pager 2>/dev/null |
		sed -n 's/.*Killed \([^ ]*\) due to.*/\1/p' | sed 's|.*/||; s/$/:-1/' | paste -sd, -)"
	result oomd_log "$(journalctl -b -u systemd-oomd -o cat --no-pager 2>/dev/null | tail -n 4 | tr '\n' '|')"
	result nohang_log "$(journalctl -b -u nohang -o cat --no-pager 2>/dev/null | grep -E 'Sending|corrective|died|name:' | tail -n 8 | tr '\n' '|')"
	# A job that should live (the near miss) leaves its exit status here.
	[ -e "$STALL/job.rc" ] && result job_rc "$(cat "$STALL/job.rc")"
	[ -e "$STALL/job.mb" ] && result job_mb "$(cat "$STALL/job.mb")"
	[ -e "$STALL/job.kinds" ] && result job_kinds "$(cat "$STALL/job.kinds")"
	result sysrq_kills "$(dmesg | grep -c 'sysrq: Manual OOM execution')"
	# oom_ext's own kills (its victim choice, issue 17) leave no kernel
	# log line: its journal line "killed PID COMM (unit ...".
	result oomext_kills "$(journalctl -b -o cat --no-pager -t oom-ext 2>/dev/null |
		sed -n 's/^killed \([0-9]*\) \([^(]*\) (unit .*/\2:\1/p' | paste -sd, -)"
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
	# And every line, one fact each (the saved results keep them all): the
	# harm model's once-a-second measures are there too.
	journalctl -b -o short-unix --no-pager -t oom-ext 2>/dev/null |
		awk -v s="$start" '{ t = $1 * 1000 - s } t > -2000 { sub(/^[^ ]+ [^ ]+ [^ ]+ /, ""); printf "OOMTEST guard_line=%+.0f %s\n", t, $0 }'
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

# Near miss: a job that takes all but BELOW_PCT % of RAM of what is
# available, holds it for SECONDS and exits by itself: nothing needs to die.
# MODE active: it keeps writing its pages (a compute job); hold: it only
# keeps them. Its exit status goes to $STALL/job.rc (137 = SIGKILL).
# shellcheck disable=SC2016  # perl code, not shell
STALL_JOB='
use strict; use warnings;
my ($mb, $secs, $mode) = @ARGV;
my @held; my $chunk = "x" x (1 << 20);
for (1 .. $mb) { my $c = $chunk; substr($c, $_ * 4096, 1) = "y" for 0 .. 255; push @held, $c }
my $end = time + $secs;
while (time < $end) {
	if ($mode eq "active") { for my $c (@held) { substr($c, $_ * 4096, 1) = "z" for 0 .. 255 } }
	else { select(undef, undef, undef, 0.5) }
}
exit 0;'

stall_nearmiss_body() {
	local seconds=$1 below=$2 mode=$3 total avail mb rc
	if [ "$mode" = both ]; then
		# One job of each kind, one after the other (the suite's boot):
		# job.rc is 0 only if both lived; job.kinds says which did not.
		local kinds="" worst=0
		for mode in active hold; do
			stall_nearmiss_body "$seconds" "$below" "$mode"
			rc=$(cat "$STALL/job.rc")
			kinds="$kinds${kinds:+ }$mode:$rc:$(cat "$STALL/job.mb")"
			[ "$rc" -ne 0 ] && worst=$rc
			# Let the memory come back and the guard's episode end.
			sleep 8
		done
		echo "$kinds" > "$STALL/job.kinds"
		echo "$worst" > "$STALL/job.rc"
		return
	fi
	total=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)
	avail=$(awk '/^MemAvailable/ {print $2}' /proc/meminfo)
	mb=$(( (avail - total * below / 100) / 1024 ))
	echo "$mb" > "$STALL/job.mb"
	"$STALL/job" -e "$STALL_JOB" "$mb" "$seconds" "$mode"
	rc=$?
	echo "$rc" > "$STALL/job.rc"
}

# Fork storm: a parent (`forker`) that starts another MB MiB hog every
# second and never waits for them: the OOM killer takes hogs, the parent
# makes more. The case a "kill the parent" policy is written for.
stall_forker() {
	while :; do
		"$STALL/hog" -e "$STALL_PERL" 0 0 0 "$1" &
		sleep 1
	done
}

stall_forkstorm_body() {
	local seconds=$1 mb=$2 forker
	"$STALL/forker" -c ". $SELF; stall_forker $mb" &
	forker=$!
	sleep "$seconds"
	kill "$forker" 2>/dev/null
	pkill -x hog
}

# Respawning leak: the leak of stall_leak_body, up to MB MiB, started again
# half a second after every kill (a service with Restart=always).
stall_respawn_body() {
	local seconds=$1 rate=$2 mb=$3
	(while :; do "$STALL/leaker" -e "$STALL_PERL" 64 "$rate" 0 "$mb"; sleep 0.5; done) &
	sleep "$seconds"
	# shellcheck disable=SC2046  # one word per pid
	kill $(jobs -p) 2>/dev/null
	pkill -x leaker
}

# Persistent hang: the gracetime scenario's storm (stress-ng restarts every
# worker the OOM killer takes), for SECONDS unless the machine reboots.
stall_hang_body() {
	# shellcheck disable=SC2086
	$HOG_ARGS --timeout "$1s"
}

# Idle cost of the guard over SECONDS on a calm machine: wake-ups (context
# switches), CPU time and RSS of its processes.
stall_idle() {
	local seconds=$1 pid pids ctx0=0 cpu0=0 ctx1=0 cpu1=0 rss=0 hz exe
	pids=$(stall_guard_pids "$STALL_GUARD")
	result idle_pids "$(echo "$pids" | paste -sd, -)"
	sample() {
		local c=0 t=0 p v n
		for p in $pids; do
			# Every thread's: /proc/PID/status counts the main thread's only.
			v=$(cat "/proc/$p"/task/*/status 2>/dev/null |
				awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s + 0}')
			n=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null)
			c=$((c + ${v:-0})); t=$((t + ${n:-0}))
		done
		echo "$c $t"
	}
	sleep 10
	read -r ctx0 cpu0 < <(sample)
	sleep "$seconds"
	read -r ctx1 cpu1 < <(sample)
	hz=$(getconf CLK_TCK)
	for pid in $pids; do
		rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
		exe=$(readlink "/proc/$pid/exe")
		result idle_exe "$exe $(stat -c %s "$exe" 2>/dev/null)"
		result idle_threads "$(find "/proc/$pid/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
	done
	result idle_seconds "$seconds"
	result idle_wakeups $((ctx1 - ctx0))
	result idle_cpu_ms $(( (cpu1 - cpu0) * 1000 / hz ))
	result idle_rss_kb "$rss"
	result oom_ext_size "$(stat -c %s "$(oom_ext_bin)" 2>/dev/null)"
}
