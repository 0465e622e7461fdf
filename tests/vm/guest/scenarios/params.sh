#!/bin/bash
# params: the oom_ext.* values from the kernel command line are in effect,
# and the guard started in the initrd lives on in the real root.
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
report_boot_facts
# Issue 17, kernel mode: a cgroup's OOM kill is counted, the module sees none.
report_memcg_kill
