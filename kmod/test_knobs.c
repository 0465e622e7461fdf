// SPDX-License-Identifier: GPL-2.0
/*
 * Test build only (make OOM_EXT_TEST=y, as kmod/tests/qemu-smoke.sh does
 * for oom_ext-test.ko): knobs that turn a race into a fixed order of
 * events. The production build has none of this (Kbuild leaves the file
 * out and oom_ext.h makes the hooks empty inlines).
 *
 * Two hold points of a buffer growth (load, bufsize write, re-arm), each
 * holding oom_ext_cfg_lock but not the spinlock until its knob is set
 * back to 0 (at most HOLD_MAX_S). Meanwhile a test can enter the OOM
 * state and see what the entry releases, then let the growth go on:
 *
 * test_grow_hold=N (0644): after the growth published its N-th chunk;
 * it must then stop at the next check.
 *
 * test_alloc_hold=N (0644): after the growth allocated its N-th chunk,
 * before it publishes it; the chunk must then be given back.
 */
#include "oom_ext.h"

#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>

/* A test that forgets to let go does not hold the buffer's lock forever. */
#define HOLD_MAX_S	60

static unsigned int test_grow_hold;
module_param(test_grow_hold, uint, 0644);
MODULE_PARM_DESC(test_grow_hold,
		 "test build only: a buffer growth waits after publishing this many chunks until this is 0");

static unsigned int test_alloc_hold;
module_param(test_alloc_hold, uint, 0644);
MODULE_PARM_DESC(test_alloc_hold,
		 "test build only: a buffer growth waits with this chunk allocated, not published, until this is 0");

static void hold_while(unsigned int *knob)
{
	unsigned long deadline = jiffies + HOLD_MAX_S * HZ;

	while (READ_ONCE(*knob) && time_before(jiffies, deadline))
		msleep(20);
	pr_info("test: growth goes on\n");
}

void oom_ext_test_grow_allocated(unsigned int chunk, unsigned int order)
{
	if (READ_ONCE(test_alloc_hold) != chunk)
		return;
	pr_info("test: growth holds chunk %u (%lu KiB) allocated, not published\n",
		chunk, 1UL << (order + PAGE_SHIFT - 10));
	hold_while(&test_alloc_hold);
}

void oom_ext_test_grow_published(unsigned int chunks)
{
	if (READ_ONCE(test_grow_hold) != chunks)
		return;
	pr_info("test: growth held after %u chunks\n", chunks);
	hold_while(&test_grow_hold);
}
