#!/bin/sh
# dracut cmdline hook (shell initrd only): start oom_ext before udev.
# Sourced by dracut's init: `return`, never `exit`. The binary parses the
# oom_ext.* command line itself, logs to /dev/kmsg and starts the guard;
# busybox and util-linux switch_root leave the guard running.
if [ -x /usr/sbin/oom-ext ]; then
    /usr/sbin/oom-ext init || warn "oom-ext: 'oom-ext init' exited with status $?; boot continues without it"
else
    warn "oom-ext: /usr/sbin/oom-ext missing from the initrd; boot continues without it"
fi
