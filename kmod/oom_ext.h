/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the parts of oom_ext.ko share: core.c (buffer, OOM state machine,
 * crash-flag work), main.c (module init/exit), sysfs.c (status, trigger),
 * tunables.c (sysctls and module parameters), tunable_hooks.c (what a
 * changed tunable does), crashflag.c (the flag file); test_knobs.c in a
 * test build only. Included first by each, for pr_fmt.
 */
#ifndef OOM_EXT_H
#define OOM_EXT_H

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/spinlock.h>
#include <linux/time64.h>
#include <linux/timer.h>
#include <linux/types.h>
#include <linux/workqueue.h>

#define BUFSIZE_MAX_MIB		4096
#define TIME_MAX_S		86400
#define FLAG_NAME_MAX		255
/*
 * The OOM state ends this many seconds after the last OOM call at the
 * earliest, plus up to 1 s until the watch sees it ...
 */
#define OOM_END_QUIET_S		5
/* ... so a shorter gracetime than this would panic on every OOM. */
#define GRACETIME_MIN_S		(OOM_END_QUIET_S + 2)

enum oom_ext_state { ST_ARMED, ST_OOM, ST_RECOVERING, ST_OFF };
enum oom_ext_source { SRC_NONE, SRC_KERNEL, SRC_TRIGGER };
enum oom_ext_flag { FLAG_ABSENT, FLAG_PRESENT, FLAG_ERROR };
/* core.c: the names status and the log use, indexed by the enums above. */
extern const char * const oom_ext_state_names[];
extern const char * const oom_ext_source_names[];
extern const char * const oom_ext_flag_names[];

/*
 * The module's state, defined in core.c. The fields down to flag_path are
 * under .lock; the notifier and the trigger take only that spinlock.
 */
struct oom_ext_st {
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
	unsigned long last_release;	/* pages the last OOM entry released */
	bool rearm_short_logged;
	/* crash flag, written by flag_work */
	enum oom_ext_flag flag;
	unsigned long flag_events;	/* the oom_events value .flag is for */
	char flag_path[FLAG_NAME_MAX + 1];	/* where it is, when present */

	/*
	 * Two queues, each with its own rescuer (WQ_MEM_RECLAIM): when no new
	 * kworker can be forked under memory pressure, each still gets a
	 * thread. That is the whole guarantee: the VFS calls of flag_work can
	 * still block in reclaim, which is why the flag has its own queue (it
	 * cannot hold up the watch and the re-arm) and why the grace timer
	 * waits for it at most GRACE_FLAG_WAIT_S (core.c). Allocated by
	 * main.c.
	 */
	struct workqueue_struct *wq;		/* watch_work, rearm_work */
	struct workqueue_struct *flag_wq;	/* flag_work */
	struct delayed_work watch_work, rearm_work, flag_work;
	struct timer_list grace_timer;
};
extern struct oom_ext_st oom_ext_st;

/* core.c */
extern struct notifier_block oom_ext_oom_nb;
unsigned long oom_ext_enter(enum oom_ext_source source);
unsigned long oom_ext_target_pages(void);
void oom_ext_buffer_resize(void);
void oom_ext_chunks_free(struct list_head *list);
enum oom_ext_flag oom_ext_flag_now_locked(void);
void oom_ext_warn_panic_halts(void);

/* tunables.c: shared by the module parameters and the sysctls. */
extern int oom_ext_gracetime;
extern int oom_ext_resettime;
extern int oom_ext_bufsize;
extern int oom_ext_crashflag;
extern struct mutex oom_ext_cfg_lock;
void oom_ext_flag_name_get(char *buf, size_t size);
int oom_ext_sysctl_register(void);
void oom_ext_sysctl_unregister(void);

/* tunable_hooks.c: what a changed tunable does, oom_ext_cfg_lock held. */
void oom_ext_bufsize_changed(int old);
void oom_ext_gracetime_changed(int old);
void oom_ext_resettime_changed(int old);
void oom_ext_crashflag_changed(int old);

/* sysfs.c: /sys/kernel/oom_ext/{status,trigger} */
int oom_ext_sysfs_create(void);
void oom_ext_sysfs_remove(void);
void oom_ext_sysfs_put(void);
void oom_ext_notify_status(void);

/*
 * test_knobs.c, only in a test build (make OOM_EXT_TEST=y): called by a
 * buffer growth after it allocated its @chunk-th chunk (of @order, not
 * yet published) and after it published its @chunks-th chunk.
 */
#ifdef OOM_EXT_TEST
void oom_ext_test_grow_allocated(unsigned int chunk, unsigned int order);
void oom_ext_test_grow_published(unsigned int chunks);
#else
static inline void oom_ext_test_grow_allocated(unsigned int chunk, unsigned int order) { }
static inline void oom_ext_test_grow_published(unsigned int chunks) { }
#endif

/* crashflag.c */
bool oom_ext_flag_name_valid(const char *s);
int oom_ext_read_small_file(const char *path, char *buf, size_t size);
int oom_ext_flag_create(const char *path, const char *text, size_t len);
bool oom_ext_flag_reachable(void);
void oom_ext_flag_path(char *buf, size_t size);
int oom_ext_flag_remove(void);
void oom_ext_flag_forget(void);

#endif /* OOM_EXT_H */
