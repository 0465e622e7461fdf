// SPDX-License-Identifier: GPL-2.0
/*
 * oom_ext: an emergency memory buffer that is given back to the system when
 * the kernel runs out of memory, so that the OOM killer's victims have room
 * to exit instead of the machine hanging.
 *
 * Interface (see docs/ARCHITECTURE.md, "Kernel module"):
 *   /proc/sys/vm/oom_ext/{gracetime,resettime,bufsize,crashflag,crashflag_name}
 *   module parameters of the same names (same variables, read-only in sysfs)
 *   /sys/kernel/oom_ext/status  (0444, pollable)
 *   /sys/kernel/oom_ext/trigger (0200, "1" enters the OOM state)
 *
 * States: armed -> oom (OOM notifier call or trigger; buffer released)
 *   -> recovering (no OOM call for OOM_END_QUIET_S and enough memory
 *   available) -> armed again after resettime (off when bufsize is 0).
 *
 * Locking: oom_ext_cfg_lock (mutex) serialises configuration writes and every
 * allocation of buffer pages. st.lock (spinlock) guards the state, the
 * counters and the buffer list. The OOM notifier only ever takes st.lock,
 * so it cannot wait behind a writer that is itself allocating memory.
 */
#include "oom_ext.h"

#include <linux/gfp.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/kobject.h>
#include <linux/ktime.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/oom.h>
#include <linux/panic.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/timekeeping.h>
#include <linux/timer.h>
#include <linux/utsname.h>
#include <linux/workqueue.h>

/*
 * The OOM state ends OOM_END_QUIET_S (oom_ext.h) after the last OOM call
 * and when MemAvailable is above max(bufsize, this).
 */
#define OOM_END_MIN_AVAIL_MIB	16
/* Re-arm retry period while memory is too short to rebuild the buffer. */
#define REARM_RETRY_S		10
/* How long a gracetime panic waits for the crash flag to reach the disk. */
#define GRACE_FLAG_WAIT_S	10
/* Retry period of a flag removal that failed (the flag stays ours). */
#define FLAG_REMOVE_RETRY_S	10
/* Largest chunk: 2 MiB. Smaller orders are tried when it fails. */
#define CHUNK_MAX_ORDER		9
/*
 * Never wake the OOM killer, never warn, never dip into the emergency
 * reserves: the buffer is a guest that leaves when memory is short.
 */
#define BUF_GFP	(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN | __GFP_NOMEMALLOC)

enum oom_ext_state { ST_ARMED, ST_OOM, ST_RECOVERING, ST_OFF };
static const char * const state_names[] = {
	[ST_ARMED] = "armed", [ST_OOM] = "oom",
	[ST_RECOVERING] = "recovering", [ST_OFF] = "off",
};

enum oom_ext_source { SRC_NONE, SRC_KERNEL, SRC_TRIGGER };
static const char * const source_names[] = {
	[SRC_NONE] = "none", [SRC_KERNEL] = "kernel", [SRC_TRIGGER] = "trigger",
};

enum oom_ext_flag { FLAG_ABSENT, FLAG_PRESENT, FLAG_ERROR };
static const char * const flag_names[] = {
	[FLAG_ABSENT] = "absent", [FLAG_PRESENT] = "present",
	[FLAG_ERROR] = "error",
};

static struct {
	spinlock_t lock;
	bool stopping;			/* module exit: queue nothing more */
	enum oom_ext_state state;
	u64 state_since_ns;		/* boottime */
	struct list_head chunks;	/* pages linked through page->lru */
	unsigned long reserved;		/* pages in chunks */
	unsigned long last_call;	/* jiffies of the last OOM call */
	unsigned long oom_start;	/* jiffies when the OOM state began */
	unsigned long grace_deadline;	/* jiffies */
	unsigned int grace_waits;	/* seconds waited for the flag */
	time64_t started_unix, started_boot;
	enum oom_ext_source source;
	unsigned long oom_events, oom_calls, releases, rearms;
	u64 release_ns, rearm_ns;	/* last measured durations */
	bool rearm_short_logged;
	/* crash flag, written by flag_work */
	enum oom_ext_flag flag;
	unsigned long flag_events;	/* the oom_events value st.flag is for */
	char flag_path[FLAG_NAME_MAX + 1];	/* where it is, when present */
} st = {
	.lock = __SPIN_LOCK_UNLOCKED(st.lock),
	.chunks = LIST_HEAD_INIT(st.chunks),
};

/*
 * Two queues, each with its own rescuer (WQ_MEM_RECLAIM): when no new
 * kworker can be forked under memory pressure, each still gets a thread.
 * That is the whole guarantee: the VFS calls of flag_work can still block
 * in reclaim, which is why the flag has its own queue (it cannot hold up
 * the watch and the re-arm) and why the grace timer waits for it at most
 * GRACE_FLAG_WAIT_S.
 */
static struct workqueue_struct *wq;		/* watch_work, rearm_work */
static struct workqueue_struct *flag_wq;	/* flag_work */
static struct kobject *oom_ext_kobj;
static struct kernfs_node *status_kn;
static void flag_work_fn(struct work_struct *work);
static void watch_work_fn(struct work_struct *work);
static void rearm_work_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(flag_work, flag_work_fn);
static DECLARE_DELAYED_WORK(watch_work, watch_work_fn);
static DECLARE_DELAYED_WORK(rearm_work, rearm_work_fn);
static struct timer_list grace_timer;

/* ---------------------------------------------------------------- buffer */

static unsigned long target_pages(void)
{
	unsigned long want = (unsigned long)READ_ONCE(oom_ext_bufsize) << (20 - PAGE_SHIFT);

	return min(want, totalram_pages() / 4);
}

static void chunks_free(struct list_head *list)
{
	struct page *page, *next;

	list_for_each_entry_safe(page, next, list, lru) {
		unsigned int order = page_private(page);

		list_del(&page->lru);
		set_page_private(page, 0);
		__free_pages(page, order);
	}
}

static void notify_status(void)
{
	struct kernfs_node *kn = READ_ONCE(status_kn);

	if (kn)
		sysfs_notify_dirent(kn);
}

static void set_state_locked(enum oom_ext_state state)
{
	st.state = state;
	st.state_since_ns = ktime_get_boottime_ns();
}

static unsigned long floor_pages(void)
{
	return OOM_END_MIN_AVAIL_MIB << (20 - PAGE_SHIFT);
}

/*
 * Grow the live buffer toward target_pages(), one chunk at a time, each
 * published under st.lock as it arrives: an OOM meanwhile releases what is
 * there, and the growth stops at the first chunk that finds the state
 * changed (an OOM entry since @events, not armed, or exiting). A chunk is
 * only taken while MemAvailable stays above it plus OOM_END_MIN_AVAIL_MIB,
 * so a resize on a loaded machine stops short instead of reclaiming down
 * to the watermarks. oom_ext_cfg_lock held.
 */
static void buffer_grow(unsigned long events)
{
	unsigned int order = CHUNK_MAX_ORDER;
	unsigned long flags, have, want;
	struct page *page;
	long avail;
	bool live;

	lockdep_assert_held(&oom_ext_cfg_lock);
	for (;;) {
		want = target_pages();
		spin_lock_irqsave(&st.lock, flags);
		live = !st.stopping && st.state == ST_ARMED &&
		       st.oom_events == events;
		have = st.reserved;
		spin_unlock_irqrestore(&st.lock, flags);
		if (!live || have >= want)
			return;
		while (order && (1UL << order) > want - have)
			order--;
		avail = si_mem_available();
		if (avail < 0 || (unsigned long)avail < (1UL << order) + floor_pages())
			return;
		page = alloc_pages(BUF_GFP, order);
		if (!page) {
			if (!order)
				return;
			order--;
			continue;
		}
		set_page_private(page, order);
		spin_lock_irqsave(&st.lock, flags);
		live = !st.stopping && st.state == ST_ARMED &&
		       st.oom_events == events;
		if (live) {
			list_add(&page->lru, &st.chunks);
			st.reserved += 1UL << order;
		}
		spin_unlock_irqrestore(&st.lock, flags);
		if (!live) {
			set_page_private(page, 0);
			__free_pages(page, order);
			return;
		}
		cond_resched();
	}
}

static void log_reserved(void)
{
	unsigned long flags, got, target = target_pages();

	spin_lock_irqsave(&st.lock, flags);
	got = st.reserved;
	spin_unlock_irqrestore(&st.lock, flags);
	if (got < target)
		pr_warn("reserved %lu KiB of the %lu KiB asked for (MemAvailable short or memory fragmented)\n",
			got << (PAGE_SHIFT - 10), target << (PAGE_SHIFT - 10));
	else
		pr_info("buffer: %lu KiB reserved\n", got << (PAGE_SHIFT - 10));
}

/*
 * Bring the buffer to the configured size. Only in the armed/off states:
 * during oom/recovering the new size is used by the re-arm.
 * oom_ext_cfg_lock held.
 */
static void buffer_resize(void)
{
	unsigned long target = target_pages(), events, flags;
	LIST_HEAD(list);
	struct page *page;

	lockdep_assert_held(&oom_ext_cfg_lock);

	spin_lock_irqsave(&st.lock, flags);
	if (st.stopping || (st.state != ST_ARMED && st.state != ST_OFF)) {
		spin_unlock_irqrestore(&st.lock, flags);
		return;
	}
	while (st.reserved > target) {
		page = list_first_entry(&st.chunks, struct page, lru);
		list_move(&page->lru, &list);
		st.reserved -= 1UL << page_private(page);
	}
	if (target && st.state == ST_OFF)
		set_state_locked(ST_ARMED);
	else if (!target && st.state == ST_ARMED)
		set_state_locked(ST_OFF);
	events = st.oom_events;
	spin_unlock_irqrestore(&st.lock, flags);
	chunks_free(&list);

	buffer_grow(events);
	log_reserved();
	notify_status();
}

/* ---------------------------------------------------------------- OOM state */

static void warn_panic_halts(void)
{
	if (READ_ONCE(oom_ext_gracetime) && !READ_ONCE(panic_timeout))
		pr_crit("gracetime=%d but kernel.panic=0: the gracetime panic will HALT the machine, not reboot it; set kernel.panic (e.g. sysctl kernel.panic=10)\n",
			READ_ONCE(oom_ext_gracetime));
}

/*
 * Enter (or stay in) the OOM state. Called from the OOM notifier under
 * oom_lock and from the trigger file: no allocation, no sleeping lock.
 * Returns the number of pages released.
 */
static unsigned long oom_ext_enter(enum oom_ext_source source)
{
	unsigned long flags, pages = 0;
	bool entered = false;
	LIST_HEAD(list);
	int grace;
	u64 t0, dt;

	t0 = ktime_get_ns();
	spin_lock_irqsave(&st.lock, flags);
	if (st.stopping) {
		spin_unlock_irqrestore(&st.lock, flags);
		return 0;
	}
	if (source == SRC_KERNEL)
		st.oom_calls++;
	st.last_call = jiffies;
	if (st.state != ST_OOM) {
		entered = true;
		set_state_locked(ST_OOM);
		st.oom_events++;
		st.source = source;
		st.started_unix = ktime_get_real_seconds();
		st.started_boot = ktime_get_boottime_seconds();
		st.oom_start = jiffies;
		st.grace_waits = 0;
		if (st.reserved) {
			list_splice_init(&st.chunks, &list);
			pages = st.reserved;
			st.reserved = 0;
			st.releases++;
		}
		cancel_delayed_work(&rearm_work);
		grace = READ_ONCE(oom_ext_gracetime);
		if (grace) {
			st.grace_deadline = st.oom_start + (unsigned long)grace * HZ;
			mod_timer(&grace_timer, st.grace_deadline);
		}
		mod_delayed_work(flag_wq, &flag_work, 0);
		mod_delayed_work(wq, &watch_work, HZ);
	}
	spin_unlock_irqrestore(&st.lock, flags);

	if (pages) {
		chunks_free(&list);
		dt = ktime_get_ns() - t0;
		WRITE_ONCE(st.release_ns, dt);
		pr_info("OOM (%s): released %lu KiB in %llu ns\n",
			source_names[source], pages << (PAGE_SHIFT - 10), dt);
	} else if (entered) {
		pr_info("OOM (%s): state oom, no buffer to release\n",
			source_names[source]);
	}
	if (entered)
		warn_panic_halts();
	/* A trigger during the state changes nothing that status shows. */
	if (entered || source == SRC_KERNEL)
		notify_status();
	return pages;
}

/*
 * The freed buffer is NOT added to *freed: that would make out_of_memory()
 * return without a kill, and the task that drove the machine into OOM would
 * just eat the buffer and come back a moment later, now without a buffer.
 * Keeping the kill (the original module's behaviour) lets the victim exit
 * with the buffer's room for its exit path; see README.md.
 */
static int oom_ext_oom_notify(struct notifier_block *nb, unsigned long unused,
			      void *freed)
{
	oom_ext_enter(SRC_KERNEL);
	return NOTIFY_OK;
}

static struct notifier_block oom_nb = {
	.notifier_call = oom_ext_oom_notify,
};

/* Every second during the OOM state: has it ended? */
static void watch_work_fn(struct work_struct *work)
{
	unsigned long floor, flags;
	bool ended = false;
	long avail = si_mem_available();

	floor = max_t(unsigned long, target_pages(),
		      OOM_END_MIN_AVAIL_MIB << (20 - PAGE_SHIFT));

	spin_lock_irqsave(&st.lock, flags);
	if (st.stopping || st.state != ST_OOM) {
		spin_unlock_irqrestore(&st.lock, flags);
		return;
	}
	if (time_after(jiffies, st.last_call + OOM_END_QUIET_S * HZ) &&
	    avail > 0 && (unsigned long)avail > floor) {
		ended = true;
		set_state_locked(ST_RECOVERING);
		st.rearm_short_logged = false;
		timer_delete(&grace_timer);
		mod_delayed_work(flag_wq, &flag_work, 0);
		mod_delayed_work(wq, &rearm_work,
				 (unsigned long)READ_ONCE(oom_ext_resettime) * HZ);
	} else {
		/* The flag is retried (and checked) while the state lasts. */
		queue_delayed_work(flag_wq, &flag_work, 0);
		queue_delayed_work(wq, &watch_work, HZ);
	}
	spin_unlock_irqrestore(&st.lock, flags);

	if (ended) {
		pr_info("OOM state ended (MemAvailable %ld KiB); re-arming in %d s\n",
			avail << (PAGE_SHIFT - 10), READ_ONCE(oom_ext_resettime));
		notify_status();
	}
}

static void rearm_work_fn(struct work_struct *work)
{
	unsigned long target, events, flags;
	bool go = false;
	long avail;
	u64 t0, dt;

	mutex_lock(&oom_ext_cfg_lock);
	target = target_pages();
	avail = si_mem_available();
	spin_lock_irqsave(&st.lock, flags);
	if (st.stopping || st.state != ST_RECOVERING) {
		/* an OOM came in or exiting: nothing to do */
	} else if (target && (avail < 0 ||
			      (unsigned long)avail < target + floor_pages())) {
		if (!st.rearm_short_logged)
			pr_info("re-arm: MemAvailable %ld KiB is short, retrying every %d s\n",
				avail << (PAGE_SHIFT - 10), REARM_RETRY_S);
		st.rearm_short_logged = true;
		queue_delayed_work(wq, &rearm_work, REARM_RETRY_S * HZ);
	} else {
		/* Armed from the first chunk on: an OOM now finds what is there. */
		set_state_locked(target ? ST_ARMED : ST_OFF);
		go = true;
	}
	events = st.oom_events;
	spin_unlock_irqrestore(&st.lock, flags);
	if (!go || !target)
		goto out;

	t0 = ktime_get_ns();
	buffer_grow(events);
	dt = ktime_get_ns() - t0;

	spin_lock_irqsave(&st.lock, flags);
	if (st.oom_events == events) {
		st.rearms++;
		st.rearm_ns = dt;
	}
	spin_unlock_irqrestore(&st.lock, flags);
	pr_info("re-arm took %llu us\n", dt / NSEC_PER_USEC);
	log_reserved();
out:
	if (go)
		notify_status();
	mutex_unlock(&oom_ext_cfg_lock);
}

/* The flag as it stands for the current OOM entry. st.lock held. */
static enum oom_ext_flag flag_now_locked(void)
{
	if (st.flag == FLAG_PRESENT && st.flag_events != st.oom_events)
		return FLAG_ABSENT;	/* from an earlier entry, not this one */
	return st.flag;
}

static void grace_timer_fn(struct timer_list *t)
{
	char path[FLAG_NAME_MAX + 1];
	enum oom_ext_flag flag;
	unsigned long flags;
	int grace = READ_ONCE(oom_ext_gracetime);

	spin_lock_irqsave(&st.lock, flags);
	if (st.stopping || st.state != ST_OOM || !grace) {
		spin_unlock_irqrestore(&st.lock, flags);
		return;
	}
	flag = flag_now_locked();
	/* The crash flag of this OOM entry must be on disk before the panic. */
	if (READ_ONCE(oom_ext_crashflag) && flag != FLAG_PRESENT &&
	    st.grace_waits < GRACE_FLAG_WAIT_S) {
		st.grace_waits++;
		mod_timer(&grace_timer, jiffies + HZ);
		spin_unlock_irqrestore(&st.lock, flags);
		return;
	}
	strscpy(path, flag == FLAG_PRESENT ? st.flag_path : "-", sizeof(path));
	spin_unlock_irqrestore(&st.lock, flags);

	if (!READ_ONCE(panic_timeout))
		pr_emerg("kernel.panic=0: this panic halts the machine instead of rebooting it\n");
	pr_emerg("crash flag: %s (%s)\n", flag_names[flag], path);
	panic("oom_ext: OOM state lasted gracetime=%d s (crash flag %s), panicking to reboot\n",
	      grace, flag_names[flag]);
}

/* ---------------------------------------------------------------- crash flag */

static enum oom_ext_flag flag_create(void)
{
	char path[FLAG_NAME_MAX + 1], text[512], boot_id[64];
	unsigned long flags;
	int len;

	oom_ext_flag_name_get(path, sizeof(path));
	if (oom_ext_read_small_file("/proc/sys/kernel/random/boot_id",
				    boot_id, sizeof(boot_id)))
		strscpy(boot_id, "unknown", sizeof(boot_id));
	spin_lock_irqsave(&st.lock, flags);
	len = scnprintf(text, sizeof(text),
			"oom_ext_flag=1\nsource=%s\nstarted_unix=%lld\nstarted_boot_s=%lld\nkernel=%s\nboot_id=%s\noom_events=%lu\noom_calls=%lu\n",
			source_names[st.source], (long long)st.started_unix,
			(long long)st.started_boot, init_utsname()->release,
			boot_id, st.oom_events, st.oom_calls);
	spin_unlock_irqrestore(&st.lock, flags);

	return oom_ext_flag_create(path, text, len) ? FLAG_ERROR : FLAG_PRESENT;
}

/*
 * Make the flag file match the state: present during oom (if enabled) at
 * a place reachable from the kworkers' root, absent otherwise. Run at each
 * OOM entry, every second while the state lasts (so a failed create is
 * retried and a flag left behind in the initramfs by switch_root is
 * written again on the real root), at the end of the state, and once more
 * at module exit.
 */
static void flag_work_fn(struct work_struct *work)
{
	unsigned long flags, events;
	char path[FLAG_NAME_MAX + 1];
	enum oom_ext_flag now;
	bool want, changed, retry = false;

	spin_lock_irqsave(&st.lock, flags);
	want = st.state == ST_OOM && READ_ONCE(oom_ext_crashflag) && !st.stopping;
	events = st.oom_events;
	spin_unlock_irqrestore(&st.lock, flags);

	if (want) {
		now = oom_ext_flag_reachable() ? FLAG_PRESENT : flag_create();
	} else {
		now = oom_ext_flag_remove() ? FLAG_ERROR : FLAG_ABSENT;
		retry = now == FLAG_ERROR;
	}

	oom_ext_flag_path(path, sizeof(path));
	spin_lock_irqsave(&st.lock, flags);
	/* Pollers are woken by a change only, not by each retry or check. */
	changed = st.flag != now || st.flag_events != events ||
		  strcmp(st.flag_path, path);
	st.flag = now;
	st.flag_events = events;
	strscpy(st.flag_path, path, sizeof(st.flag_path));
	if (retry && !st.stopping)
		queue_delayed_work(flag_wq, &flag_work, FLAG_REMOVE_RETRY_S * HZ);
	spin_unlock_irqrestore(&st.lock, flags);
	if (changed)
		notify_status();
}

/* ---------------------------------------------------------------- sysfs */

static ssize_t status_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	unsigned long flags, reserved, events, calls, releases, rearms;
	enum oom_ext_state state;
	enum oom_ext_source source;
	char flag_path[FLAG_NAME_MAX + 1];
	enum oom_ext_flag flag;
	u64 since, rel_ns, rearm_ns;

	spin_lock_irqsave(&st.lock, flags);
	state = st.state;
	since = st.state_since_ns;
	reserved = st.reserved;
	events = st.oom_events;
	calls = st.oom_calls;
	releases = st.releases;
	rearms = st.rearms;
	source = st.source;
	flag = flag_now_locked();
	strscpy(flag_path, flag == FLAG_PRESENT ? st.flag_path : "",
		sizeof(flag_path));
	rel_ns = st.release_ns;
	rearm_ns = st.rearm_ns;
	spin_unlock_irqrestore(&st.lock, flags);

	return sysfs_emit(buf,
			  "state=%s\nreserved_bytes=%lu\ntarget_bytes=%lu\noom_events=%lu\noom_calls=%lu\nreleases=%lu\nrearms=%lu\nstate_ms=%llu\nlast_source=%s\nflag=%s\nflag_path=%s\nrelease_ns=%llu\nrearm_ns=%llu\n",
			  state_names[state], reserved << PAGE_SHIFT,
			  target_pages() << PAGE_SHIFT, events, calls, releases,
			  rearms, (ktime_get_boottime_ns() - since) / NSEC_PER_MSEC,
			  source_names[source], flag_names[flag], flag_path,
			  rel_ns, rearm_ns);
}

static ssize_t trigger_store(struct kobject *kobj, struct kobj_attribute *attr,
			     const char *buf, size_t count)
{
	if (!sysfs_streq(buf, "1"))
		return -EINVAL;
	oom_ext_enter(SRC_TRIGGER);
	return count;
}

static struct kobj_attribute status_attr = __ATTR_RO(status);
static struct kobj_attribute trigger_attr = __ATTR_WO(trigger);

static struct attribute *oom_ext_attrs[] = {
	&status_attr.attr,
	&trigger_attr.attr,
	NULL,
};

static const struct attribute_group oom_ext_group = {
	.attrs = oom_ext_attrs,
};

/* ---------------------------------------------------------------- tunables */

void oom_ext_bufsize_changed(int old)
{
	if (READ_ONCE(oom_ext_bufsize) != old)
		buffer_resize();
}

void oom_ext_gracetime_changed(int old)
{
	int val = READ_ONCE(oom_ext_gracetime);
	unsigned long flags;

	spin_lock_irqsave(&st.lock, flags);
	if (!st.stopping && st.state == ST_OOM) {
		st.grace_deadline = st.oom_start + (unsigned long)val * HZ;
		if (val)
			mod_timer(&grace_timer, st.grace_deadline);
		else
			timer_delete(&grace_timer);
	}
	spin_unlock_irqrestore(&st.lock, flags);
	warn_panic_halts();
}

void oom_ext_resettime_changed(int old)
{
	unsigned long flags;

	spin_lock_irqsave(&st.lock, flags);
	if (!st.stopping && st.state == ST_RECOVERING) {
		/* Counted from the end of the OOM state, as before. */
		u64 done = ktime_get_boottime_ns() - st.state_since_ns;
		u64 want = (u64)READ_ONCE(oom_ext_resettime) * NSEC_PER_SEC;

		mod_delayed_work(wq, &rearm_work, want > done ?
				 nsecs_to_jiffies(want - done) : 0);
	}
	spin_unlock_irqrestore(&st.lock, flags);
}

void oom_ext_crashflag_changed(int old)
{
	unsigned long flags;

	if (READ_ONCE(oom_ext_crashflag) == old)
		return;
	spin_lock_irqsave(&st.lock, flags);
	if (!st.stopping && st.state == ST_OOM)
		mod_delayed_work(flag_wq, &flag_work, 0);
	spin_unlock_irqrestore(&st.lock, flags);
}

/* ---------------------------------------------------------------- init/exit */

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
 * notifier must be gone before: nothing queues work after st.stopping.
 */
static void teardown(void)
{
	struct kernfs_node *kn;
	unsigned long flags;

	spin_lock_irqsave(&st.lock, flags);
	st.stopping = true;			/* nothing queues from here on */
	spin_unlock_irqrestore(&st.lock, flags);

	timer_delete_sync(&grace_timer);
	cancel_delayed_work_sync(&watch_work);
	cancel_delayed_work_sync(&rearm_work);
	cancel_delayed_work_sync(&flag_work);
	/* Remove the flag from the kworker's root, as it was created. */
	queue_delayed_work(flag_wq, &flag_work, 0);
	flush_delayed_work(&flag_work);
	oom_ext_flag_forget();

	kn = READ_ONCE(status_kn);
	WRITE_ONCE(status_kn, NULL);
	if (kn)
		sysfs_put(kn);
	kobject_put(oom_ext_kobj);
	destroy_workqueue(flag_wq);
	destroy_workqueue(wq);
	chunks_free(&st.chunks);
}

static int __init oom_ext_init(void)
{
	char name[FLAG_NAME_MAX + 1];
	int err;

	timer_setup(&grace_timer, grace_timer_fn, 0);
	st.state_since_ns = ktime_get_boottime_ns();
	st.state = ST_OFF;

	wq = alloc_workqueue("oom_ext", WQ_MEM_RECLAIM | WQ_HIGHPRI, 0);
	if (!wq)
		return -ENOMEM;
	flag_wq = alloc_workqueue("oom_ext_flag", WQ_MEM_RECLAIM, 0);
	if (!flag_wq) {
		destroy_workqueue(wq);
		return -ENOMEM;
	}
	oom_ext_kobj = kobject_create_and_add("oom_ext", kernel_kobj);
	if (!oom_ext_kobj) {
		destroy_workqueue(flag_wq);
		destroy_workqueue(wq);
		return -ENOMEM;
	}

	mutex_lock(&oom_ext_cfg_lock);
	buffer_resize();
	mutex_unlock(&oom_ext_cfg_lock);

	err = oom_ext_sysctl_register();
	if (err)
		goto fail;
	err = register_oom_notifier(&oom_nb);
	if (err)
		goto unregister_sysctl;
	/* Last: the trigger file can enter the OOM state. */
	err = sysfs_create_group(oom_ext_kobj, &oom_ext_group);
	if (err)
		goto unregister_notifier;
	WRITE_ONCE(status_kn, sysfs_get_dirent(oom_ext_kobj->sd, "status"));

	warn_panic_halts();
	warn_panic_on_oom();
	oom_ext_flag_name_get(name, sizeof(name));
	pr_info("loaded: bufsize=%d MiB gracetime=%d s resettime=%d s crashflag=%d crashflag_name=%s\n",
		oom_ext_bufsize, oom_ext_gracetime, oom_ext_resettime,
		oom_ext_crashflag, name);
	return 0;

unregister_notifier:
	unregister_oom_notifier(&oom_nb);
unregister_sysctl:
	oom_ext_sysctl_unregister();
fail:
	teardown();
	return err;
}

static void __exit oom_ext_exit(void)
{
	/* Each waits for its running callers (trigger, sysctl writers, OOM calls). */
	sysfs_remove_group(oom_ext_kobj, &oom_ext_group);
	oom_ext_sysctl_unregister();
	unregister_oom_notifier(&oom_nb);
	teardown();
	pr_info("unloaded\n");
}

module_init(oom_ext_init);
module_exit(oom_ext_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Emergency memory buffer released on OOM, crash flag, gracetime panic");
MODULE_AUTHOR("oom_ext contributors");
MODULE_VERSION("0.1.0");
