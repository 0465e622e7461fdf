#!/bin/busybox sh
# shellcheck shell=dash
/bin/busybox --install -s /bin
say() { echo "SMOKE $*"; }
sleep 3
old=$(cat /run/oldpid)
say after_switch_same_pid="$([ "$(cat /run/oom-ext/guard.pid)" = "$old" ] && echo yes || echo no)"
say after_switch_argv="$(tr '\0' ' ' < /proc/"$old"/cmdline)"
say after_switch_root_is_new="$([ "$(stat -L -c %d:%i /proc/"$old"/root)" = "$(stat -c %d:%i /)" ] && echo yes || echo no)"
say after_switch_exe="$(readlink /proc/"$old"/exe)"
dmesg | grep 'oom-ext\[' | tail -3 | sed 's/^/SMOKE log2: /'
say done=1
poweroff -f
