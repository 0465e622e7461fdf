// SPDX-License-Identifier: GPL-2.0
/*
 * oom_ext: an emergency memory buffer that is given back to the system when
 * the kernel runs out of memory, so that the OOM killer's victims have room
 * to exit instead of the machine hanging. This file loads and unloads it.
 *
 * Interface (see docs/ARCHITECTURE.md, "Kernel module"):
 *   /proc/sys/vm/oom_ext/{gracetime,resettime,bufsize,crashflag,crashflag_name}
 *   module parameters of the same names (same variables, read-only in sysfs)
 *   /sys/kernel/oom_ext/status  (0444, pollable)
 *   /sys/kernel/oom_ext/trigger (0200, "1" enters the OOM state)
 *
 * Load builds the buffer, then registers the sysctls, the OOM notifier and
 * last the sysfs files (the trigger can enter the OOM state). Unload
 * removes those in the opposite order, each waiting for its running
 * callers, before anything they use is torn down.
 */
#include "oom_ext.h"

#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/oom.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timer.h>
#include <linux/workqueue.h>

/* vm.panic_on_oom panics right after the notifier: say what that costs. */
static void warn_panic_on_oom(void)
{
	char val[16];

	if (oom_ext_read_small_file("/proc/sys/vm/panic_on_oom", val, sizeof(val)) ||
	    !strcmp(val, "0"))
		return;
	pr_warn("vm.panic_on_oom=%s: the kernel panics right after oom_ext's notifier, before a victim is killed and before the crash flag is written; the buffer and gracetime do not help then\n",
		val);
}

/*
 * Undo everything init did up to the sysfs group. Sysfs, sysctls and the
 * notifier must be gone before: nothing queues work after .stopping.
 */
static void teardown(void)
{
	unsigned long flags;

	spin_lock_irqsave(&oom_ext_st.lock, flags);
	oom_ext_st.stopping = true;		/* nothing queues from here on */
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);

	timer_delete_sync(&oom_ext_st.grace_timer);
	cancel_delayed_work_sync(&oom_ext_st.watch_work);
	cancel_delayed_work_sync(&oom_ext_st.rearm_work);
	cancel_delayed_work_sync(&oom_ext_st.flag_work);
	/* Remove the flag from the kworker's root, as it was created. */
	queue_delayed_work(oom_ext_st.flag_wq, &oom_ext_st.flag_work, 0);
	flush_delayed_work(&oom_ext_st.flag_work);
	oom_ext_flag_forget();

	oom_ext_sysfs_put();
	destroy_workqueue(oom_ext_st.flag_wq);
	destroy_workqueue(oom_ext_st.wq);
	oom_ext_chunks_free(&oom_ext_st.chunks);
}

static int __init oom_ext_init(void)
{
	char name[FLAG_NAME_MAX + 1];
	int err;

	oom_ext_st.state_since_ns = ktime_get_boottime_ns();
	oom_ext_st.state = ST_OFF;

	oom_ext_st.wq = alloc_workqueue("oom_ext", WQ_MEM_RECLAIM | WQ_HIGHPRI, 0);
	if (!oom_ext_st.wq)
		return -ENOMEM;
	oom_ext_st.flag_wq = alloc_workqueue("oom_ext_flag", WQ_MEM_RECLAIM, 0);
	if (!oom_ext_st.flag_wq) {
		destroy_workqueue(oom_ext_st.wq);
		return -ENOMEM;
	}

	mutex_lock(&oom_ext_cfg_lock);
	oom_ext_buffer_resize();
	mutex_unlock(&oom_ext_cfg_lock);

	err = oom_ext_sysctl_register();
	if (err)
		goto fail;
	err = register_oom_notifier(&oom_ext_oom_nb);
	if (err)
		goto unregister_sysctl;
	/* Last: the trigger file can enter the OOM state. */
	err = oom_ext_sysfs_create();
	if (err)
		goto unregister_notifier;

	oom_ext_warn_panic_halts();
	warn_panic_on_oom();
	oom_ext_flag_name_get(name, sizeof(name));
	pr_info("loaded: bufsize=%d MiB gracetime=%d s resettime=%d s crashflag=%d crashflag_name=%s\n",
		oom_ext_bufsize, oom_ext_gracetime, oom_ext_resettime,
		oom_ext_crashflag, name);
	return 0;

unregister_notifier:
	unregister_oom_notifier(&oom_ext_oom_nb);
unregister_sysctl:
	oom_ext_sysctl_unregister();
fail:
	teardown();
	return err;
}

static void __exit oom_ext_exit(void)
{
	/* Each waits for its running callers (trigger, sysctl writers, OOM calls). */
	oom_ext_sysfs_remove();
	oom_ext_sysctl_unregister();
	unregister_oom_notifier(&oom_ext_oom_nb);
	teardown();
	pr_info("unloaded\n");
}

module_init(oom_ext_init);
module_exit(oom_ext_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Emergency memory buffer released on OOM, crash flag, gracetime panic");
MODULE_AUTHOR("oom_ext contributors");
MODULE_VERSION("0.1.0");
