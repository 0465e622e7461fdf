#!/bin/bash
# initrd: same facts as params, for the other initrd flavours (issue 5).
# shellcheck source=tests/vm/guest/lib.sh
. /opt/oomtest/lib.sh
report_boot_facts
