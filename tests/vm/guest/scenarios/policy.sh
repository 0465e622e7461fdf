# shellcheck shell=bash
# policy (issue 17): who the guard kills in a stall, in one boot.
#
# Five small holders, each in its own unit and named by the symlink it
# was executed through (comm): lista (unit policy-lista.service), listb,
# smallpref, keeper (OOMScoreAdjust=900: the kernel's ranking puts it
# first) and the page-cache thrash's hog. Rules: prefer smallpref,
# protect keeper; the run-time list: policy-lista.service, then listb's
# pid.
#   Phase A: the same with `dry_run = yes` in policy.d (SIGHUP): a
#     stall, the guard logs its choice and kills nobody (keeper is
#     started after it: a dry run leaves the kernel's own OOM killer
#     unsteered, and in a first run it took keeper).
#   Phase B: dry_run removed (SIGHUP), the stall again: the guard's kills
#     must come in the order lista, listb, smallpref, then the hog;
#     keeper (protected) lives; with oom_ext.kill_scope=unit the hog's
#     kill takes its unit (bash, dd, hog) whole.
#   Phase C: kill-parent (oom_ext.parent_max=2, parent_expire=120 and
#     kill_scope=process through /run/oom-ext/params and SIGHUP): a
#     `forker` that starts a greedy hog again after each kill, beside a
#     `sibling` holder in the same unit; the second hog's kill takes the
#     forker too, the sibling lives.
#   Phase D: policy=panic the same way, then a stall: the kernel panics
#     (the guard sets kernel.panic: Debian's is 0) and the guest reboots.
# Boot 2: the report names policy=panic.
# The host decides (tests/vm/oomvm/scenarios.py, check_policy).
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh

if [ "${BOOT:-1}" != 1 ]; then
	result report_log "$(journalctl -b -u oom-ext-report.service -o cat --no-pager | tr '\n' '|')"
	latest=$(find /var/lib/oom-ext/history -type f -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -n 1 | cut -d' ' -f2-)
	result history_latest "$([ -n "$latest" ] && tr '\n' '|' < "$latest")"
	result flag_left "$([ -e /oomflag ] && echo present || echo absent)"
	exit 0
fi

for name in lista listb smallpref keeper sibling; do ln -sf /usr/bin/perl "$STALL/$name"; done
# hold MB: allocate and touch MB MiB once, then sleep.
# shellcheck disable=SC2016  # perl code
HOLD='my $x = "y" x ($ARGV[0] << 20); sleep 1 while 1;'
hold() { # UNIT COMM MB [systemd-run properties]
	local unit=$1 comm=$2 mb=$3; shift 3
	stall_unit "$unit" -p OOMScoreAdjust=0 "$@" "$STALL/$comm" -e "$HOLD" "$mb"
}
hold policy-lista lista 8
hold policy-listb listb 8
hold policy-smallpref smallpref 8
sleep 3
pid_of() { systemctl show -P MainPID "$1.service"; }
for name in lista listb smallpref; do
	result "pid.$name" "$(pid_of "policy-$name")"
	result "oom_score.$name" "$(cat "/proc/$(pid_of "policy-$name")/oom_score" 2>/dev/null)"
done

guard=$(cat /run/oom-ext/guard.pid 2>/dev/null)
result guard_alive "$([ -n "$guard" ] && [ -d "/proc/$guard" ] && echo 1 || echo 0)"
oom_ext=$(oom_ext_bin)
"$oom_ext" victims add policy-lista.service "$(pid_of policy-listb)" >/dev/null
result victims_list "$("$oom_ext" victims list | tr '\n' '|')"

mkdir -p /etc/oom-ext/policy.d
cat > /etc/oom-ext/policy.conf <<'EOF'
# issue 17 scenario
prefer name=smallpref
protect name=keeper
not a rule
EOF
echo 'dry_run = yes' > /etc/oom-ext/policy.d/50-dry.conf

# The guard's journal lines since a mark (whole seconds: phases are apart).
mark() { date +%s; }
guard_lines() { journalctl -b -o cat --no-pager -t oom-ext --since "@$1" 2>/dev/null; }
# comm:pid of every process the guard killed itself, in order.
guard_kills() {
	guard_lines "$1" | sed -n 's/^killed \([0-9]*\) \([^(]*\) (unit .*/\2:\1/p' | paste -sd, -
}
alive() { [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }
report_alive() { # PHASE NAMES...
	local name phase=$1; shift
	for name in "$@"; do
		if alive "$(pid_of "policy-$name")" "$name"; then result "$phase.alive.$name" 1; else result "$phase.alive.$name" 0; fi
	done
}
thrash() { # SECONDS
	timeout $(($1 + 120)) systemd-run --wait --unit="policy-thrash-$2" -p OOMPolicy=continue \
		-p RuntimeMaxSec=$(($1 + 30)) /bin/bash -c ". $SELF; stall_thrash_body $1 8" >/dev/null 2>&1
}

# ---- phase A: dry run
t0=$(mark)
kill -HUP "$guard"
sleep 2
result a.policy_line "$(guard_lines "$t0" | grep '^policy: ' | tail -n 1)"
result a.bad_line "$(guard_lines "$t0" | grep -c 'policy.conf:4: ')"
sysrq_before=$(dmesg | grep -c 'sysrq: Manual OOM execution')
kills_before=$(vmstat oom_kill)
thrash "$(knob policy_dry_s 25)" a
sleep 2
result a.dry_lines "$(guard_lines "$t0" | grep -c '^dry run: would kill')"
result a.dry_first "$(guard_lines "$t0" | grep '^dry run: would kill' | head -n 1)"
result a.kills "$(guard_kills "$t0")"
result a.sysrq "$(($(dmesg | grep -c 'sysrq: Manual OOM execution') - sysrq_before))"
result a.kernel_kills "$(($(vmstat oom_kill) - kills_before))"
report_alive a lista listb smallpref
sleep 5

# ---- phase B: the real thing. keeper only now: during the dry run
# nobody steers the kernel's own OOM killer, which would take it first.
hold policy-keeper keeper 48 -p OOMScoreAdjust=900
sleep 3
result "oom_score.keeper" "$(cat "/proc/$(pid_of policy-keeper)/oom_score" 2>/dev/null)"
t1=$(mark)
rm /etc/oom-ext/policy.d/50-dry.conf
kill -HUP "$guard"
sleep 2
result b.policy_line "$(guard_lines "$t1" | grep '^policy: ' | tail -n 1)"
kills_before=$(vmstat oom_kill)
thrash "$(knob policy_s 40)" b
sleep 3
result b.kills "$(guard_kills "$t1")"
result b.kill_lines "$(guard_lines "$t1" | grep '^killed ' | head -n 6 | tr '\n' '|')"
result b.kernel_kills "$(($(vmstat oom_kill) - kills_before))"
# kill_scope=unit (command line): nothing of the thrash unit is left.
result b.thrash_left "$({ wc -l < /sys/fs/cgroup/system.slice/policy-thrash-b.service/cgroup.procs; } 2>/dev/null || echo 0)"
result b.kernel_killed "$(dmesg | sed -n 's/.*Killed process \([0-9]*\) (\([^)]*\)).*/\2:\1/p' | paste -sd, -)"
result b.fallbacks "$(guard_lines "$t1" | grep -c 'falling back to sysrq f')"
result b.victims_list "$("$oom_ext" victims list | tr '\n' '|')"
report_alive b lista listb smallpref keeper
# journald: the kill events carry MESSAGE_ID and fields; the catalog knows the id.
kill_id=0f9f2ed9e9bc487d8c71326a256fcb7f
result b.journal_kills "$(journalctl -b --no-pager -o cat MESSAGE_ID=$kill_id 2>/dev/null | grep -c '^killed ')"
result b.journal_lista "$(journalctl -b --no-pager -o verbose MESSAGE_ID=$kill_id 2>/dev/null | grep -c 'OOM_EXT_VICTIM_UNIT=policy-lista.service')"
journalctl --update-catalog 2>/dev/null
result catalog "$(journalctl --list-catalog $kill_id 2>/dev/null | head -n 1)"
result guard_alive_end "$([ -d "/proc/$guard" ] && echo 1 || echo 0)"
result guard_timeline "$(guard_lines "$t0" | tail -n 30 | tr '\n' '|' | head -c 3000)"
sleep 5

# ---- phase C: kill-parent. Process scope: a unit kill would take the
# forker with its first child.
set_param() { # KEY VALUE: in /run/oom-ext/params, read again on SIGHUP
	if grep -q "^$1=" /run/oom-ext/params; then
		sed -i "s/^$1=.*/$1=$2/" /run/oom-ext/params
	else
		echo "$1=$2" >> /run/oom-ext/params
	fi
}
# The module re-arms only after resettime (300 s): "recovering" will do,
# a stall enters the OOM state again from there.
wait_until 60 state_is_not oom
result c.state_before "$(status_get state)"
t2=$(mark)
set_param kill_scope process
set_param parent_max 2
set_param parent_expire 120
kill -HUP "$guard"
sleep 2
result c.policy_line "$(guard_lines "$t2" | grep '^policy: ' | tail -n 1)"
# `oom-ext status` shows the policy in effect.
result c.status "$("$oom_ext" status | grep -E '^(policy|victims list)' | tr '\n' '|')"
result c.status_json "$("$oom_ext" status --json | grep -o '"policy":{[^}]*' | head -n 1)"
# A kill.d hook: what it is told and how it runs (from the guard's sandbox).
mkdir -p /etc/oom-ext/kill.d
cat > /etc/oom-ext/kill.d/50-record <<'EOF'
#!/bin/sh
{
	printf '%s %s %s %s adj=%s sched=%s json=' "$OOM_EXT_EVENT" "$OOM_EXT_VICTIM_PID" "$OOM_EXT_VICTIM_COMM" \
		"$OOM_EXT_VICTIM_UNIT" "$(cat /proc/self/oom_score_adj)" "$(cut -d' ' -f41 /proc/self/stat)"
	head -c 400
	echo
} >> /run/oomtest-killhook.log
EOF
chmod 0755 /etc/oom-ext/kill.d/50-record
# The unit: the forker (its children are greedy hogs, one at a time, the
# next a second after a kill), its sibling, and the page-cache reader.
cat > "$STALL/forkc.sh" <<'EOF'
# shellcheck disable=SC1091,SC2016
. /opt/oomtest/scenarios/stall-lib.sh
"$STALL/sibling" -e 'my $x = "y" x (8 << 20); sleep 1 while 1;' &
echo $! > "$STALL/sibling.pid"
"$STALL/forker" -c ". $SELF"'; while :; do "$STALL/hog" -e "$STALL_PERL" 56 8 8 1000000; sleep 1; done' &
echo $! > "$STALL/forker.pid"
while :; do dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null; done &
sleep "$1"
# shellcheck disable=SC2046  # one word per pid
kill $(jobs -p) 2>/dev/null
pkill -x hog
EOF
secs=$(knob policy_parent_s 90)
stall_unit policy-forkc -p RuntimeMaxSec=$((secs + 30)) /bin/bash "$STALL/forkc.sh" "$secs"
sleep 2
forker=$(cat "$STALL/forker.pid" 2>/dev/null)
sibling=$(cat "$STALL/sibling.pid" 2>/dev/null)
result c.forker_pid "$forker"
# Until the forker is gone (the second kill of its children takes it too).
wait_until "$secs" bash -c "[ \"\$(cat /proc/$forker/comm 2>/dev/null)\" != forker ]"
sleep 3
result c.forker_alive "$(alive "$forker" forker && echo 1 || echo 0)"
result c.sibling_alive "$(alive "$sibling" sibling && echo 1 || echo 0)"
result c.kills "$(guard_kills "$t2")"
result c.parent_line "$(guard_lines "$t2" | grep '^killed parent ' | head -n 1)"
sleep 2
result c.killhook "$(tr '\n' '|' < /run/oomtest-killhook.log 2>/dev/null | head -c 2000)"
result c.parent_journal "$(journalctl -b --no-pager -o cat MESSAGE_ID=c777a692d4af49639b21bd222aafa6f3 2>/dev/null | grep -c '^killed parent ')"
result c.timeline "$(guard_lines "$t2" | tail -n 20 | tr '\n' '|' | head -c 2000)"
systemctl stop policy-forkc.service 2>/dev/null

# ---- phase D: policy=panic, the last thing this boot does.
sleep 5
wait_until 60 state_is_not oom
result d.state_before "$(status_get state)"
result d.kernel_panic_before "$(cat /proc/sys/kernel/panic)"
result boot_id "$(cat /proc/sys/kernel/random/boot_id)"
t3=$(mark)
set_param policy panic
kill -HUP "$guard"
sleep 2
result d.reload_line "$(guard_lines "$t3" | grep 'reloaded parameters' | tail -n 1)"
sync
thrash "$(knob policy_panic_s 90)" d
# Still here: no panic.
result d.no_panic 1
result d.timeline "$(guard_lines "$t3" | tail -n 20 | tr '\n' '|' | head -c 2000)"
exit 1
