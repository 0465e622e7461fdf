// SPDX-License-Identifier: GPL-2.0
/*
 * What a changed tunable does to the running state: the hooks of the
 * tunable table (tunables.c), called after a sysctl write with
 * oom_ext_cfg_lock held. A new size resizes the buffer (in the armed and
 * off states), a new gracetime moves the running timer, a new resettime
 * moves a pending re-arm, crashflag makes the flag follow at once.
 */
#include "oom_ext.h"

#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/spinlock.h>
#include <linux/timer.h>
#include <linux/workqueue.h>

void oom_ext_bufsize_changed(int old)
{
	if (READ_ONCE(oom_ext_bufsize) != old)
		oom_ext_buffer_resize();
}

void oom_ext_gracetime_changed(int old)
{
	int val = READ_ONCE(oom_ext_gracetime);
	unsigned long flags;

	spin_lock_irqsave(&oom_ext_st.lock, flags);
	if (!oom_ext_st.stopping && oom_ext_st.state == ST_OOM) {
		oom_ext_st.grace_deadline = oom_ext_st.oom_start +
					    (unsigned long)val * HZ;
		if (val)
			mod_timer(&oom_ext_st.grace_timer,
				  oom_ext_st.grace_deadline);
		else
			timer_delete(&oom_ext_st.grace_timer);
	}
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);
	oom_ext_warn_panic_halts();
}

void oom_ext_resettime_changed(int old)
{
	unsigned long flags;

	spin_lock_irqsave(&oom_ext_st.lock, flags);
	if (!oom_ext_st.stopping && oom_ext_st.state == ST_RECOVERING) {
		/* Counted from the end of the OOM state, as before. */
		u64 done = ktime_get_boottime_ns() - oom_ext_st.state_since_ns;
		u64 want = (u64)READ_ONCE(oom_ext_resettime) * NSEC_PER_SEC;

		mod_delayed_work(oom_ext_st.wq, &oom_ext_st.rearm_work,
				 want > done ? nsecs_to_jiffies(want - done) : 0);
	}
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);
}

void oom_ext_crashflag_changed(int old)
{
	unsigned long flags;

	if (READ_ONCE(oom_ext_crashflag) == old)
		return;
	spin_lock_irqsave(&oom_ext_st.lock, flags);
	if (!oom_ext_st.stopping && oom_ext_st.state == ST_OOM)
		mod_delayed_work(oom_ext_st.flag_wq, &oom_ext_st.flag_work, 0);
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);
}
