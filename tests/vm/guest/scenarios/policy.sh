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
# The host decides (tests/vm/oomvm/scenarios.py, check_policy).
# shellcheck disable=SC1091  # guest paths
. /opt/oomtest/scenarios/stall-lib.sh

for name in lista listb smallpref keeper; do ln -sf /usr/bin/perl "$STALL/$name"; done
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
thrash "$(knob policy_dry_s 12)" a
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
result b.thrash_left "$(wc -l < /sys/fs/cgroup/system.slice/policy-thrash-b.service/cgroup.procs 2>/dev/null || echo 0)"
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
