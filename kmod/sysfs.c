// SPDX-License-Identifier: GPL-2.0
/*
 * /sys/kernel/oom_ext/: status (0444, key=value lines, pollable: woken by
 * oom_ext_notify_status() at each change) and trigger (0200, "1" enters
 * the OOM state). The keys are specified in docs/ARCHITECTURE.md.
 */
#include "oom_ext.h"

#include <linux/kobject.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/sysfs.h>

static struct kobject *oom_ext_kobj;
static struct kernfs_node *status_kn;

void oom_ext_notify_status(void)
{
	struct kernfs_node *kn = READ_ONCE(status_kn);

	if (kn)
		sysfs_notify_dirent(kn);
}

static ssize_t status_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	unsigned long flags, reserved, events, calls, releases, rearms;
	unsigned long last_release;
	enum oom_ext_state state;
	enum oom_ext_source source;
	char flag_path[FLAG_NAME_MAX + 1];
	enum oom_ext_flag flag;
	u64 since, rel_ns, rearm_ns;

	spin_lock_irqsave(&oom_ext_st.lock, flags);
	state = oom_ext_st.state;
	since = oom_ext_st.state_since_ns;
	reserved = oom_ext_st.reserved;
	events = oom_ext_st.oom_events;
	calls = oom_ext_st.oom_calls;
	releases = oom_ext_st.releases;
	rearms = oom_ext_st.rearms;
	source = oom_ext_st.source;
	flag = oom_ext_flag_now_locked();
	strscpy(flag_path, flag == FLAG_PRESENT ? oom_ext_st.flag_path : "",
		sizeof(flag_path));
	rel_ns = oom_ext_st.release_ns;
	rearm_ns = oom_ext_st.rearm_ns;
	last_release = oom_ext_st.last_release;
	spin_unlock_irqrestore(&oom_ext_st.lock, flags);

	return sysfs_emit(buf,
			  "state=%s\nreserved_bytes=%lu\ntarget_bytes=%lu\noom_events=%lu\noom_calls=%lu\nreleases=%lu\nrearms=%lu\nstate_ms=%llu\nlast_source=%s\nflag=%s\nflag_path=%s\nrelease_ns=%llu\nrearm_ns=%llu\nlast_release_bytes=%lu\n",
			  oom_ext_state_names[state], reserved << PAGE_SHIFT,
			  oom_ext_target_pages() << PAGE_SHIFT, events, calls,
			  releases, rearms,
			  (ktime_get_boottime_ns() - since) / NSEC_PER_MSEC,
			  oom_ext_source_names[source], oom_ext_flag_names[flag],
			  flag_path, rel_ns, rearm_ns,
			  last_release << PAGE_SHIFT);
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

/* Last at load: the trigger file can enter the OOM state. */
int oom_ext_sysfs_create(void)
{
	int err;

	oom_ext_kobj = kobject_create_and_add("oom_ext", kernel_kobj);
	if (!oom_ext_kobj)
		return -ENOMEM;
	err = sysfs_create_group(oom_ext_kobj, &oom_ext_group);
	if (err) {
		kobject_put(oom_ext_kobj);
		oom_ext_kobj = NULL;
		return err;
	}
	WRITE_ONCE(status_kn, sysfs_get_dirent(oom_ext_kobj->sd, "status"));
	return 0;
}

/* First at unload: waits for a running trigger or status call. */
void oom_ext_sysfs_remove(void)
{
	sysfs_remove_group(oom_ext_kobj, &oom_ext_group);
}

/* After every work item is cancelled: nothing notifies any more. */
void oom_ext_sysfs_put(void)
{
	struct kernfs_node *kn = READ_ONCE(status_kn);

	WRITE_ONCE(status_kn, NULL);
	if (kn)
		sysfs_put(kn);
	kobject_put(oom_ext_kobj);
	oom_ext_kobj = NULL;
}
