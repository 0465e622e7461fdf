/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the parts of oom_ext.ko share: core.c (buffer, OOM state, sysfs,
 * init/exit), crashflag.c (the flag file), tunables.c (sysctls and module
 * parameters). Included first by each, for pr_fmt.
 */
#ifndef OOM_EXT_H
#define OOM_EXT_H

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mutex.h>
#include <linux/types.h>

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

/* tunables.c: shared by the module parameters and the sysctls. */
extern int oom_ext_gracetime;
extern int oom_ext_resettime;
extern int oom_ext_bufsize;
extern int oom_ext_crashflag;
extern struct mutex oom_ext_cfg_lock;
void oom_ext_flag_name_get(char *buf, size_t size);
int oom_ext_sysctl_register(void);
void oom_ext_sysctl_unregister(void);

/* core.c: what a changed tunable does, called with oom_ext_cfg_lock held. */
void oom_ext_bufsize_changed(int old);
void oom_ext_gracetime_changed(int old);
void oom_ext_resettime_changed(int old);
void oom_ext_crashflag_changed(int old);

/* crashflag.c */
bool oom_ext_flag_name_valid(const char *s);
int oom_ext_read_small_file(const char *path, char *buf, size_t size);
int oom_ext_flag_create(const char *path, const char *text, size_t len);
bool oom_ext_flag_reachable(void);
void oom_ext_flag_path(char *buf, size_t size);
int oom_ext_flag_remove(void);
void oom_ext_flag_forget(void);

#endif /* OOM_EXT_H */
