// SPDX-License-Identifier: GPL-2.0
/*
 * The buffer and the OOM state machine: the buffer's pages, the OOM
 * notifier, the end-of-state watch, the re-arm, the gracetime timer and
 * the work that keeps the crash flag in step with the state. The state
 * itself (oom_ext_st) is shared with main.c, sysfs.c and tunable_hooks.c.
 *
 * States: armed -> oom (OOM notifier call or trigger; buffer released)
 *   -> recovering (no OOM call for OOM_END_QUIET_S and enough memory
 *   available) -> armed again after resettime (off when bufsize is 0).
 *
 * Locking: oom_ext_cfg_lock (mutex) serialises configuration writes and
 * every allocation of buffer pages. oom_ext_st.lock (spinlock) guards the
 * state, the counters and the buffer list. The OOM notifier only ever takes
 * oom_ext_st.lock, so it cannot wait behind a writer that is itself
 * allocating memory.
 */
#include "oom_ext.h"

#include <linux/gfp.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/oom.h>
#include <linux/panic.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/string.h>
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

const char * const oom_ext_state_names[] = {
	[ST_ARMED] = "armed", [ST_OOM] = "oom",
	[ST_RECOVERING] = "recovering", [ST_OFF] = "off",
};
const char * const oom_ext_source_names[] = {
	[SRC_NONE] = "none", [SRC_KERNEL] = "kernel", [SRC_TRIGGER] = "trigger",
};
const char * const oom_ext_flag_names[] = {
	[FLAG_ABSENT] = "absent", [FLAG_PRESENT] = "present",
	[FLAG_ERROR] = "error",
};

static void flag_work_fn(struct work_struct *work);
static void watch_work_fn(struct work_struct *work);
static void rearm_work_fn(struct work_struct *work);
static void grace_timer_fn(struct timer_list *t);

/* Initialised statically: ready before main.c's init can queue anything. */
struct oom_ext_st oom_ext_st = {
	.lock = __SPIN_LOCK_UNLOCKED(oom_ext_st.lock),
	.chunks = LIST_HEAD_INIT(oom_ext_st.chunks),
	.watch_work = __DELAYED_WORK_INITIALIZER(oom_ext_st.watch_work, watch_work_fn, 0),
	.rearm_work = __DELAYED_WORK_INITIALIZER(oom_ext_st.rearm_work, rearm_work_fn, 0),
	.flag_work = __DELAYED_WORK_INITIALIZER(oom_ext_st.flag_work, flag_work_fn, 0),
	.grace_timer = __TIMER_INITIALIZER(grace_timer_fn, 0),
};

/* ---------------------------------------------------------------- buffer */

unsigned long oom_ext_target_pages(void)
{
	unsigned long want = (unsigned long)READ_ONCE(oom_ext_bufsize) << (20 - PAGE_SHIFT);

	return min(want, totalram_pages() / 4);
}

void oom_ext_chunks_free(struct list_head *list)
{
	struct page *page, *next;

	list_for_each_entry_safe(page, next, list, lru) {
		unsigned int order = page_private(page);

		list_del(&page->lru);
		set_page_private(page, 0);
		__free_pages(page, order);
	}
}

static void set_state_locked(enum oom_ext_state state)
{
	oom_ext_st.state = state;
	oom_ext_st.state_since_ns = ktime_get_boottime_ns();
}

static unsigned long floor_pages(void)
{
	return OOM_END_MIN_AVAIL_MIB << (20 - PAGE_SHIFT);
}

/*
 * Grow the live buffer toward oom_ext_target_pages(), one chunk at a time,
 * each published under oom_ext_st.lock as it arrives: an OOM meanwhile
 * releases what is there, and the growth stops at the first chunk that
 * finds the state changed (an OOM entry since @events, not armed, or
 * exiting). A chunk is only taken while MemAvailable stays above it plus
 * OOM_END_MIN_AVAIL_MIB, so a resize on a loaded machine stops short
 * instead of reclaiming down to the watermarks. oom_ext_cfg_lock held.
 */
static void buffer_grow(unsigned long events)
{
	unsigned int order = CHUNK_MAX_ORDER, chunks = 0;
	unsigned long flags, have, want;
	struct page *page;
	long avail;
	bool live;

	lockdep_assert_held(&oom_ext_cfg_lock);
	for (;;) {
		want = oom_ext_target_pages();
		spin_lock_irqsave(&oom_ext_st.lock, flags);
		live = !oom_ext_st.stopping && oom_ext_st.state == ST_ARMED &&
		       oom_ext_st.oom_events == events;
		have = oom_ext_st.reserved;
		spin_unlock_irqrestore(&oom_ext_st.lock, flags);
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
		oom_ext_test_grow_allocated(chunks + 1, order);
		spin_lock_irqsave(&oom_ext_st.lock, flags);
		live = !oom_ext_st.stopping && oom_ext_st.state == ST_ARMED &&
		       oom_ext_st.oom_events == events;
		if (live) {
			list_add(&page->lru, &oom_ext_st.chunks);
			oom_ext_st.reserved += 1UL << order;
		}
		spin_unlock_irqrestore(&oom_ext_st.lock, flags);
		if (!live) {
			/* Too late: the buffer it was for is gone. */
			set_page_private(page, 0);
			__free_pages(page, order);
			pr_info("buffer growth: the state changed while a %lu KiB chunk was allocated; chunk given back\n",
				1UL << (order + PAGE_SHIFT - 10));
			return;
		}
		oom_ext_test_grow_published(++chunks);
		cond_resched();
	}
}

/* After a growth that started at OOM entry number @events. */
static void log_reserved(unsigned long events)
{
	unsigned long flags, got, target = oom_ext_target_pages();
	bool entered;

	spin_lock_irqsave(&oom_ext_st.lock, flags);
	got = oom_ext_st.reserved;
	entered = oom_ext_st.oom_events != events;
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);
	if (entered)
		pr_info("buffer growth stopped: the OOM state was entered meanwhile\n");
	else if (got < target)
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
void oom_ext_buffer_resize(void)
{
	unsigned long target = oom_ext_target_pages(), events, flags;
	LIST_HEAD(list);
	struct page *page;

	lockdep_assert_held(&oom_ext_cfg_lock);

	spin_lock_irqsave(&oom_ext_st.lock, flags);
	if (oom_ext_st.stopping || (oom_ext_st.state != ST_ARMED && oom_ext_st.state != ST_OFF)) {
		spin_unlock_irqrestore(&oom_ext_st.lock, flags);
		return;
	}
	while (oom_ext_st.reserved > target) {
		page = list_first_entry(&oom_ext_st.chunks, struct page, lru);
		list_move(&page->lru, &list);
		oom_ext_st.reserved -= 1UL << page_private(page);
	}
	if (target && oom_ext_st.state == ST_OFF)
		set_state_locked(ST_ARMED);
	else if (!target && oom_ext_st.state == ST_ARMED)
		set_state_locked(ST_OFF);
	events = oom_ext_st.oom_events;
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);
	oom_ext_chunks_free(&list);

	buffer_grow(events);
	log_reserved(events);
	oom_ext_notify_status();
}

/* ---------------------------------------------------------------- OOM state */

void oom_ext_warn_panic_halts(void)
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
unsigned long oom_ext_enter(enum oom_ext_source source)
{
	unsigned long flags, pages = 0;
	bool entered = false;
	LIST_HEAD(list);
	int grace;
	u64 t0, dt;

	t0 = ktime_get_ns();
	spin_lock_irqsave(&oom_ext_st.lock, flags);
	if (oom_ext_st.stopping) {
		spin_unlock_irqrestore(&oom_ext_st.lock, flags);
		return 0;
	}
	if (source == SRC_KERNEL)
		oom_ext_st.oom_calls++;
	oom_ext_st.last_call = jiffies;
	if (oom_ext_st.state != ST_OOM) {
		entered = true;
		set_state_locked(ST_OOM);
		oom_ext_st.oom_events++;
		oom_ext_st.source = source;
		oom_ext_st.started_unix = ktime_get_real_seconds();
		oom_ext_st.started_boot = ktime_get_boottime_seconds();
		oom_ext_st.oom_start = jiffies;
		oom_ext_st.grace_waits = 0;
		if (oom_ext_st.reserved) {
			list_splice_init(&oom_ext_st.chunks, &list);
			pages = oom_ext_st.reserved;
			oom_ext_st.reserved = 0;
			oom_ext_st.releases++;
		}
		oom_ext_st.last_release = pages;
		cancel_delayed_work(&oom_ext_st.rearm_work);
		grace = READ_ONCE(oom_ext_gracetime);
		if (grace) {
			oom_ext_st.grace_deadline = oom_ext_st.oom_start + (unsigned long)grace * HZ;
			mod_timer(&oom_ext_st.grace_timer, oom_ext_st.grace_deadline);
		}
		mod_delayed_work(oom_ext_st.flag_wq, &oom_ext_st.flag_work, 0);
		mod_delayed_work(oom_ext_st.wq, &oom_ext_st.watch_work, HZ);
	}
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);

	if (pages) {
		oom_ext_chunks_free(&list);
		dt = ktime_get_ns() - t0;
		WRITE_ONCE(oom_ext_st.release_ns, dt);
		pr_info("OOM (%s): released %lu KiB in %llu ns\n",
			oom_ext_source_names[source], pages << (PAGE_SHIFT - 10), dt);
	} else if (entered) {
		pr_info("OOM (%s): state oom, no buffer to release\n",
			oom_ext_source_names[source]);
	}
	if (entered)
		oom_ext_warn_panic_halts();
	/* A trigger during the state changes nothing that status shows. */
	if (entered || source == SRC_KERNEL)
		oom_ext_notify_status();
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

struct notifier_block oom_ext_oom_nb = {
	.notifier_call = oom_ext_oom_notify,
};

/* Every second during the OOM state: has it ended? */
static void watch_work_fn(struct work_struct *work)
{
	unsigned long floor, flags;
	bool ended = false;
	long avail = si_mem_available();

	floor = max_t(unsigned long, oom_ext_target_pages(),
		      OOM_END_MIN_AVAIL_MIB << (20 - PAGE_SHIFT));

	spin_lock_irqsave(&oom_ext_st.lock, flags);
	if (oom_ext_st.stopping || oom_ext_st.state != ST_OOM) {
		spin_unlock_irqrestore(&oom_ext_st.lock, flags);
		return;
	}
	if (time_after(jiffies, oom_ext_st.last_call + OOM_END_QUIET_S * HZ) &&
	    avail > 0 && (unsigned long)avail > floor) {
		ended = true;
		set_state_locked(ST_RECOVERING);
		oom_ext_st.rearm_short_logged = false;
		timer_delete(&oom_ext_st.grace_timer);
		mod_delayed_work(oom_ext_st.flag_wq, &oom_ext_st.flag_work, 0);
		mod_delayed_work(oom_ext_st.wq, &oom_ext_st.rearm_work,
				 (unsigned long)READ_ONCE(oom_ext_resettime) * HZ);
	} else {
		/* The flag is retried (and checked) while the state lasts. */
		queue_delayed_work(oom_ext_st.flag_wq, &oom_ext_st.flag_work, 0);
		queue_delayed_work(oom_ext_st.wq, &oom_ext_st.watch_work, HZ);
	}
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);

	if (ended) {
		pr_info("OOM state ended (MemAvailable %ld KiB); re-arming in %d s\n",
			avail << (PAGE_SHIFT - 10), READ_ONCE(oom_ext_resettime));
		oom_ext_notify_status();
	}
}

static void rearm_work_fn(struct work_struct *work)
{
	unsigned long target, events, flags;
	bool go = false, counted;
	long avail;
	u64 t0, dt;

	mutex_lock(&oom_ext_cfg_lock);
	target = oom_ext_target_pages();
	avail = si_mem_available();
	spin_lock_irqsave(&oom_ext_st.lock, flags);
	if (oom_ext_st.stopping || oom_ext_st.state != ST_RECOVERING) {
		/* an OOM came in or exiting: nothing to do */
	} else if (target && (avail < 0 ||
			      (unsigned long)avail < target + floor_pages())) {
		if (!oom_ext_st.rearm_short_logged)
			pr_info("re-arm: MemAvailable %ld KiB is short, retrying every %d s\n",
				avail << (PAGE_SHIFT - 10), REARM_RETRY_S);
		oom_ext_st.rearm_short_logged = true;
		queue_delayed_work(oom_ext_st.wq, &oom_ext_st.rearm_work, REARM_RETRY_S * HZ);
	} else {
		/* Armed from the first chunk on: an OOM now finds what is there. */
		set_state_locked(target ? ST_ARMED : ST_OFF);
		go = true;
	}
	events = oom_ext_st.oom_events;
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);
	if (!go || !target)
		goto out;

	t0 = ktime_get_ns();
	buffer_grow(events);
	dt = ktime_get_ns() - t0;

	spin_lock_irqsave(&oom_ext_st.lock, flags);
	counted = oom_ext_st.oom_events == events;
	if (counted) {
		oom_ext_st.rearms++;
		oom_ext_st.rearm_ns = dt;
	}
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);
	if (counted)
		pr_info("re-arm took %llu us\n", dt / NSEC_PER_USEC);
	else
		pr_info("re-arm stopped after %llu us by an OOM entry (not counted in rearms, rearm_ns)\n",
			dt / NSEC_PER_USEC);
	log_reserved(events);
out:
	if (go)
		oom_ext_notify_status();
	mutex_unlock(&oom_ext_cfg_lock);
}

/* The flag as it stands for the current OOM entry. oom_ext_st.lock held. */
enum oom_ext_flag oom_ext_flag_now_locked(void)
{
	if (oom_ext_st.flag == FLAG_PRESENT && oom_ext_st.flag_events != oom_ext_st.oom_events)
		return FLAG_ABSENT;	/* from an earlier entry, not this one */
	return oom_ext_st.flag;
}

static void grace_timer_fn(struct timer_list *t)
{
	char path[FLAG_NAME_MAX + 1];
	enum oom_ext_flag flag;
	unsigned long flags;
	int grace = READ_ONCE(oom_ext_gracetime);

	spin_lock_irqsave(&oom_ext_st.lock, flags);
	if (oom_ext_st.stopping || oom_ext_st.state != ST_OOM || !grace) {
		spin_unlock_irqrestore(&oom_ext_st.lock, flags);
		return;
	}
	flag = oom_ext_flag_now_locked();
	/* The crash flag of this OOM entry must be on disk before the panic. */
	if (READ_ONCE(oom_ext_crashflag) && flag != FLAG_PRESENT &&
	    oom_ext_st.grace_waits < GRACE_FLAG_WAIT_S) {
		oom_ext_st.grace_waits++;
		mod_timer(&oom_ext_st.grace_timer, jiffies + HZ);
		spin_unlock_irqrestore(&oom_ext_st.lock, flags);
		return;
	}
	strscpy(path, flag == FLAG_PRESENT ? oom_ext_st.flag_path : "-", sizeof(path));
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);

	if (!READ_ONCE(panic_timeout))
		pr_emerg("kernel.panic=0: this panic halts the machine instead of rebooting it\n");
	pr_emerg("crash flag: %s (%s)\n", oom_ext_flag_names[flag], path);
	panic("oom_ext: OOM state lasted gracetime=%d s (crash flag %s), panicking to reboot\n",
	      grace, oom_ext_flag_names[flag]);
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
	spin_lock_irqsave(&oom_ext_st.lock, flags);
	len = scnprintf(text, sizeof(text),
			"oom_ext_flag=1\nsource=%s\nstarted_unix=%lld\nstarted_boot_s=%lld\nkernel=%s\nboot_id=%s\noom_events=%lu\noom_calls=%lu\n",
			oom_ext_source_names[oom_ext_st.source], (long long)oom_ext_st.started_unix,
			(long long)oom_ext_st.started_boot, init_utsname()->release,
			boot_id, oom_ext_st.oom_events, oom_ext_st.oom_calls);
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);

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

	spin_lock_irqsave(&oom_ext_st.lock, flags);
	want = oom_ext_st.state == ST_OOM && READ_ONCE(oom_ext_crashflag) && !oom_ext_st.stopping;
	events = oom_ext_st.oom_events;
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);

	if (want) {
		now = oom_ext_flag_reachable() ? FLAG_PRESENT : flag_create();
	} else {
		now = oom_ext_flag_remove() ? FLAG_ERROR : FLAG_ABSENT;
		retry = now == FLAG_ERROR;
	}

	oom_ext_flag_path(path, sizeof(path));
	spin_lock_irqsave(&oom_ext_st.lock, flags);
	/* Pollers are woken by a change only, not by each retry or check. */
	changed = oom_ext_st.flag != now || oom_ext_st.flag_events != events ||
		  strcmp(oom_ext_st.flag_path, path);
	oom_ext_st.flag = now;
	oom_ext_st.flag_events = events;
	strscpy(oom_ext_st.flag_path, path, sizeof(oom_ext_st.flag_path));
	if (retry && !oom_ext_st.stopping)
		queue_delayed_work(oom_ext_st.flag_wq, &oom_ext_st.flag_work, FLAG_REMOVE_RETRY_S * HZ);
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);
	if (changed)
		oom_ext_notify_status();
}
