#!/bin/busybox sh
# shellcheck shell=dash
# PID 1 of the smoke initramfs: oom-ext init, an OOM storm, a busybox
# switch_root into a tmpfs root, and checks printed as "SMOKE key=value".
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs run /run
say() { echo "SMOKE $*"; }
rel=$(uname -r)
mkdir -p /lib/modules/"$rel"
ko=$(find / -maxdepth 1 -name "oom_ext.ko*" | head -n 1)
if [ -n "$ko" ]; then
	mkdir -p /lib/modules/"$rel"/extra; mv "$ko" /lib/modules/"$rel"/extra/
	echo "extra/${ko#/}:" > /lib/modules/"$rel"/modules.dep
else
	: > /lib/modules/"$rel"/modules.dep
fi
t0=$(cut -d' ' -f1 /proc/uptime)
/usr/sbin/oom-ext init; say init_exit=$?
t1=$(cut -d' ' -f1 /proc/uptime)
say init_s_from="$t0" init_s_to="$t1"
say mode="$(cat /run/oom-ext/mode)"
sleep 2
pid=$(cat /run/oom-ext/guard.pid)
say guard_pid="$pid" guard_argv0="$(cut -d '' -f1 /proc/"$pid"/cmdline | tr -d '\0' | cut -c1-14)"
say guard_oom_score_adj="$(cat /proc/"$pid"/oom_score_adj)"
say guard_state_before="$(grep -E '^(state|psi|buffer_bytes)=' /run/oom-ext/guard.state | tr '\n' ,)"
# smaps_rollup walks the page tables (status counters are approximate).
grep -E '^(Rss|Anonymous|Locked):' /proc/"$pid"/smaps_rollup | tr -s ' \t' ' ' | sed 's/^/SMOKE guard_/'
v0=$(grep voluntary_ctxt /proc/"$pid"/status | head -1 | tr -dc 0-9)
sleep 5
v1=$(grep voluntary_ctxt /proc/"$pid"/status | head -1 | tr -dc 0-9)
say idle_wakeups_5s="$((v1 - v0))"
# OOM storm: three hogs, one after another.
( for i in 1 2 3; do /hog; done ) &
storm=$!
seen_flag=no
for i in $(seq 1 120); do
	[ -e /oomflag ] && seen_flag=yes && cp /oomflag /run/flag-copy
	kill -0 "$storm" 2>/dev/null || break
	sleep 0.5
done
say storm_done_after_halfsecs="$i" flag_seen_during_oom="$seen_flag"
[ -e /run/flag-copy ] && sed 's/^/SMOKE flag: /' /run/flag-copy
say guard_alive_after_storm="$(kill -0 "$pid" 2>/dev/null && echo yes || echo no)"
sleep 8
say flag_after_quiet="$([ -e /oomflag ] && echo present || echo absent)"
sleep 6
say guard_state_after="$(grep -E '^(state|oom_events|releases|rearms|stall_events|kills|victims)=' /run/oom-ext/guard.state | tr '\n' ,)"
[ -r /sys/kernel/oom_ext/status ] && say module_status="$(tr '\n' , < /sys/kernel/oom_ext/status)"
dmesg | grep 'oom-ext\[' | sed 's/^/SMOKE log: /'
/usr/sbin/oom-ext status | sed 's/^/SMOKE status: /'
# busybox switch_root into a tmpfs that holds its own copy of the binary.
mkdir -p /newroot; mount -t tmpfs newroot /newroot
mkdir -p /newroot/bin /newroot/usr/sbin /newroot/proc /newroot/sys /newroot/dev /newroot/run
cp /bin/busybox /newroot/bin/; cp /usr/sbin/oom-ext /newroot/usr/sbin/; cp /init2.sh /newroot/init2
echo "$pid" > /run/oldpid
mount --move /proc /newroot/proc; mount --move /sys /newroot/sys; mount --move /dev /newroot/dev; mount --move /run /newroot/run
exec switch_root /newroot /init2
