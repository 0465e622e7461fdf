// SPDX-License-Identifier: GPL-2.0
/*
 * Test build only (make OOM_EXT_TEST=y, as kmod/tests/qemu-smoke.sh does
 * for oom_ext-test.ko): knobs that turn a race into a fixed order of
 * events. The production build has none of this (Kbuild leaves the file
 * out and oom_ext.h makes the hook an empty inline).
 *
 * test_grow_hold=N (0644): a buffer growth (load, bufsize write, re-arm)
 * that has published its N-th chunk waits, holding oom_ext_cfg_lock but
 * not the spinlock, until test_grow_hold is set to 0 (at most
 * HOLD_MAX_S). Meanwhile a test can enter the OOM state and see what the
 * entry releases, then let the growth go on and see it stop.
 */
#include "oom_ext.h"

#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/moduleparam.h>

/* A test that forgets to let go does not hold the buffer's lock forever. */
#define HOLD_MAX_S	60

static unsigned int test_grow_hold;
module_param(test_grow_hold, uint, 0644);
MODULE_PARM_DESC(test_grow_hold,
		 "test build only: a buffer growth waits after this many chunks until this is 0");

void oom_ext_test_grow_published(unsigned int chunks)
{
	unsigned long deadline = jiffies + HOLD_MAX_S * HZ;

	if (READ_ONCE(test_grow_hold) != chunks)
		return;
	pr_info("test: growth held after %u chunks\n", chunks);
	while (READ_ONCE(test_grow_hold) && time_before(jiffies, deadline))
		msleep(20);
	pr_info("test: growth goes on\n");
}
