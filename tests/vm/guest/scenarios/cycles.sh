#!/bin/bash
# cycles: load/unload the module many times (also while in the OOM state and
# right after a resize) and write bad values to every sysctl. Nothing may
# leak (MemAvailable back where it was), no kernel warning, every bad write
# fails with EINVAL and leaves the old value.
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
sys=/proc/sys/vm/oom_ext

# The guard reacts to the module going away; stop it so only the module is measured.
systemctl stop oom-ext-guard.service 2>/dev/null
pid=$(cat /run/oom-ext/guard.pid 2>/dev/null) && kill "$pid" 2>/dev/null
sleep 1

# MemAvailable plus the pages parked on the per-CPU free lists ("count:" in
# /proc/zoneinfo): 6.12 keeps freed order-9 pages there, outside MemFree and
# MemAvailable, so the buffer's 2 MiB chunks would look like a leak.
mem_available() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
	echo $(($(awk '/^MemAvailable/ {print $2}' /proc/meminfo) +
		$(awk '$1 == "count:" { n += $2 } END { print n + 0 }' /proc/zoneinfo) * 4))
}

rmmod oom_ext 2>/dev/null
before=$(mem_available)
total=0 ok=0
cycle() {   # cycle DESCRIPTION COMMAND…: modprobe, COMMAND, rmmod
	total=$((total + 1))
	if modprobe oom_ext bufsize=64 && "$@" && rmmod oom_ext; then
		ok=$((ok + 1))
	else
		result "cycle_failed.$total" "$1"
		rmmod oom_ext 2>/dev/null
	fi
}
for _ in 1 2 3 4 5 6 7 8; do cycle true; done
for _ in 1 2 3; do cycle eval 'echo 1 > /sys/kernel/oom_ext/trigger && sleep 0.5'; done
for _ in 1 2 3; do cycle eval "echo 8 > $sys/bufsize && echo 64 > $sys/bufsize"; done
after=$(mem_available)
result cycles_total "$total"
result cycles_ok "$ok"
result mem_before_kb "$before"
result mem_drift_kb $((after - before))
result kernel_warnings "$(dmesg | grep -cE 'WARNING:|BUG:|Oops|general protection|kmemleak|refcount_t')"

modprobe oom_ext
n=0
bad_write() {   # bad_write FILE VALUE
	local file=$1 value=$2 old err now
	old=$(cat "$file" 2>/dev/null)
	err=$( { echo "$value" > "$file"; } 2>&1 )
	now=$(cat "$file" 2>/dev/null)
	case $err in
	*"Invalid argument"*) err=EINVAL ;;
	"") err="accepted" ;;
	esac
	[ "$now" = "$old" ] && now=unchanged || now="changed to $now"
	result "badwrite.$n" "${file##*/}=${value:0:40}: $err, $now"
	n=$((n + 1))
}
long=/$(printf 'a%.0s' $(seq 300))
# Not here: "1 2" and "0x10", which every kernel int sysctl accepts (the
# first number; base prefixes), so they are not bad values for this one.
for v in -1 4097 abc "" 99999999999 12abc; do bad_write $sys/bufsize "$v"; done
for v in -1 86401 1e3; do bad_write $sys/gracetime "$v"; done
for v in -1 86401 x; do bad_write $sys/resettime "$v"; done
for v in 2 -1 yes; do bad_write $sys/crashflag "$v"; done
for v in relative/flag "" /a/../b "$long"; do bad_write $sys/crashflag_name "$v"; done
for v in 2 0 abc; do bad_write /sys/kernel/oom_ext/trigger "$v"; done
result badwrites_total "$n"

# Resizing may finish in a work item: wait (bounded) for the status to say so.
status_is() { [ "$(status_get "$1")" = "$2" ]; }
echo 16 > $sys/bufsize && wait_until 20 status_is reserved_bytes $((16 << 20))
result resize_16 "$(status_get reserved_bytes)"
echo 0 > $sys/bufsize && wait_until 20 status_is state off
result resize_0_state "$(status_get state)"
echo 32 > $sys/bufsize && wait_until 20 status_is reserved_bytes $((32 << 20))
result resize_back "$(status_get reserved_bytes)"
