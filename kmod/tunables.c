// SPDX-License-Identifier: GPL-2.0
/*
 * The tunables: one table entry per integer tunable (variable, maximum,
 * what a change does), from which both the sysctl and the module
 * parameter are made; crashflag_name is the one string.
 *
 * A bad sysctl write fails with EINVAL and keeps the old value. A bad
 * module parameter is logged and ignored (the default stays) instead of
 * failing the load, so a typo on the command line never costs the
 * protection. Parameters are read-only in sysfs: run-time changes go
 * through sysctl.
 */
#include "oom_ext.h"

#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/string.h>
#include <linux/sysctl.h>
#include <linux/sysfs.h>

#include "compat.h"

int oom_ext_gracetime;
int oom_ext_resettime = 300;
int oom_ext_bufsize = 32;
int oom_ext_crashflag = 1;
static char crashflag_name[FLAG_NAME_MAX + 1] = "/oomflag";

DEFINE_MUTEX(oom_ext_cfg_lock);
/* Its own lock: the flag work reads the name while a bufsize write allocates. */
static DEFINE_MUTEX(name_lock);

struct int_tunable {
	int *var;
	int min_nonzero;		/* 0, or at least this */
	int max;
	void (*changed)(int old);	/* cfg_lock held */
	const char *why_min;
};

static struct int_tunable t_gracetime = {
	.var = &oom_ext_gracetime, .max = TIME_MAX_S,
	.changed = oom_ext_gracetime_changed,
	.min_nonzero = GRACETIME_MIN_S,
	.why_min = "the OOM state lasts at least 5 s after its last OOM call plus the 1 s check, so a shorter gracetime would panic on every OOM",
};
static struct int_tunable t_resettime = {
	.var = &oom_ext_resettime, .max = TIME_MAX_S,
	.changed = oom_ext_resettime_changed,
};
static struct int_tunable t_bufsize = {
	.var = &oom_ext_bufsize, .max = BUFSIZE_MAX_MIB,
	.changed = oom_ext_bufsize_changed,
};
static struct int_tunable t_crashflag = {
	.var = &oom_ext_crashflag, .max = 1,
	.changed = oom_ext_crashflag_changed,
};

/* Below the tunable's smallest non-zero value: logged with the reason. */
static bool too_small(const struct int_tunable *t, const char *name, int val)
{
	if (!val || val >= t->min_nonzero)
		return false;
	pr_warn("%s=%d refused: must be 0 or at least %d (%s)\n",
		name, val, t->min_nonzero, t->why_min);
	return true;
}

void oom_ext_flag_name_get(char *buf, size_t size)
{
	mutex_lock(&name_lock);
	strscpy(buf, crashflag_name, size);
	mutex_unlock(&name_lock);
}

/* ---------------------------------------------------------------- sysctl */

static int sysctl_int(OOM_EXT_CTL_TABLE *table, int write, void *buffer,
		      size_t *lenp, loff_t *ppos)
{
	struct int_tunable *t = table->extra1;
	struct ctl_table tmp = *table;
	int val, old, err;

	mutex_lock(&oom_ext_cfg_lock);
	old = *t->var;
	val = old;
	tmp.data = &val;
	tmp.extra1 = SYSCTL_ZERO;
	tmp.extra2 = &t->max;
	err = proc_dointvec_minmax(&tmp, write, buffer, lenp, ppos);
	if (!err && write && too_small(t, table->procname, val))
		err = -EINVAL;
	if (!err && write) {
		WRITE_ONCE(*t->var, val);
		t->changed(old);
	}
	mutex_unlock(&oom_ext_cfg_lock);
	return err;
}

static int sysctl_flag_name(OOM_EXT_CTL_TABLE *table, int write, void *buffer,
			    size_t *lenp, loff_t *ppos)
{
	/* Room for one byte too many, to tell an over-long name apart. */
	char val[FLAG_NAME_MAX + 2];
	struct ctl_table tmp = *table;
	int err;

	tmp.data = val;
	tmp.maxlen = sizeof(val);
	if (write && *ppos)
		return -EINVAL;		/* one write() per value */

	mutex_lock(&name_lock);
	if (write)
		val[0] = '\0';
	else
		strscpy(val, crashflag_name, sizeof(val));
	err = proc_dostring(&tmp, write, buffer, lenp, ppos);
	if (!err && write) {
		if (oom_ext_flag_name_valid(val))
			strscpy(crashflag_name, val, sizeof(crashflag_name));
		else
			err = -EINVAL;
	}
	mutex_unlock(&name_lock);
	return err;
}

#define INT_SYSCTL(name) {						\
	.procname = #name, .data = &oom_ext_##name,			\
	.maxlen = sizeof(int), .mode = 0644,				\
	.proc_handler = sysctl_int, .extra1 = &t_##name,		\
}

static struct ctl_table oom_ext_table[] = {
	INT_SYSCTL(gracetime),
	INT_SYSCTL(resettime),
	INT_SYSCTL(bufsize),
	INT_SYSCTL(crashflag),
	{
		.procname = "crashflag_name", .data = crashflag_name,
		.maxlen = sizeof(crashflag_name), .mode = 0644,
		.proc_handler = sysctl_flag_name,
	},
	OOM_EXT_SYSCTL_SENTINEL
};

static struct ctl_table_header *sysctl_hdr;

int oom_ext_sysctl_register(void)
{
	sysctl_hdr = register_sysctl("vm/oom_ext", oom_ext_table);
	return sysctl_hdr ? 0 : -ENOMEM;
}

/* Waits for running writers. */
void oom_ext_sysctl_unregister(void)
{
	unregister_sysctl_table(sysctl_hdr);
}

/* ---------------------------------------------------------------- params */

static int param_set_int_tunable(const char *s, const struct kernel_param *kp)
{
	const struct int_tunable *t = kp->arg;
	int val;

	if (kstrtoint(s, 10, &val) || val < 0 || val > t->max) {
		pr_warn("ignoring %s=\"%.32s\": not a number in 0..%d, using %d\n",
			kp->name, s, t->max, *t->var);
		return 0;
	}
	if (too_small(t, kp->name, val)) {
		pr_warn("ignoring %s=%d, using %d\n", kp->name, val, *t->var);
		return 0;
	}
	*t->var = val;
	return 0;
}

static int param_get_int_tunable(char *buf, const struct kernel_param *kp)
{
	const struct int_tunable *t = kp->arg;

	return sysfs_emit(buf, "%d\n", READ_ONCE(*t->var));
}

static const struct kernel_param_ops int_tunable_ops = {
	.set = param_set_int_tunable,
	.get = param_get_int_tunable,
};

static int param_set_flag_name(const char *s, const struct kernel_param *kp)
{
	char buf[FLAG_NAME_MAX + 2], *val;

	strscpy(buf, s, sizeof(buf));
	val = strim(buf);
	mutex_lock(&name_lock);
	if (oom_ext_flag_name_valid(val))
		strscpy(crashflag_name, val, sizeof(crashflag_name));
	else
		pr_warn("ignoring crashflag_name=\"%.64s\": not an absolute path of 1..%d bytes of printable ASCII without space, '\"' or '..', using %s\n",
			s, FLAG_NAME_MAX, crashflag_name);
	mutex_unlock(&name_lock);
	return 0;
}

static int param_get_flag_name(char *buf, const struct kernel_param *kp)
{
	int n;

	mutex_lock(&name_lock);
	n = sysfs_emit(buf, "%s\n", crashflag_name);
	mutex_unlock(&name_lock);
	return n;
}

static const struct kernel_param_ops flag_name_ops = {
	.set = param_set_flag_name,
	.get = param_get_flag_name,
};

#define INT_PARAM(name, desc)						\
	module_param_cb(name, &int_tunable_ops, &t_##name, 0444);	\
	MODULE_PARM_DESC(name, desc)

INT_PARAM(gracetime,
	  "seconds in OOM state before a panic (reboot); 0 = never, else at least 7 (default 0)");
INT_PARAM(resettime,
	  "seconds after the OOM state before the buffer is re-armed (default 300)");
INT_PARAM(bufsize,
	  "emergency buffer in MiB, at most 1/4 of RAM; 0 = none (default 32)");
INT_PARAM(crashflag,
	  "create a crash flag file during the OOM state (default 1)");
module_param_cb(crashflag_name, &flag_name_ops, NULL, 0444);
MODULE_PARM_DESC(crashflag_name, "absolute path of the crash flag (default /oomflag)");
