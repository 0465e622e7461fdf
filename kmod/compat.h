/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel version differences for oom_ext, kept in one place.
 * Supported: Debian 12's 6.1 (6.1.0-NN, 6.1.y stable) and 6.12 (backports).
 */
#ifndef OOM_EXT_COMPAT_H
#define OOM_EXT_COMPAT_H

#include <linux/version.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/string.h>
#include <linux/sysctl.h>

/* 6.11 made proc_handler take a const ctl_table. */
#if KERNEL_VERSION(6, 11, 0) <= LINUX_VERSION_CODE
#define OOM_EXT_CTL_TABLE const struct ctl_table
#else
#define OOM_EXT_CTL_TABLE struct ctl_table
#endif

/*
 * Before 6.6 register_sysctl() walked the table up to an empty sentinel;
 * since 6.11 the size comes from ARRAY_SIZE() and a sentinel would be
 * rejected as an entry without a name.
 */
#if KERNEL_VERSION(6, 11, 0) <= LINUX_VERSION_CODE
#define OOM_EXT_SYSCTL_SENTINEL
#else
#define OOM_EXT_SYSCTL_SENTINEL {}
#endif

/* 6.3 replaced the user_namespace argument of vfs_*() with mnt_idmap. */
#if KERNEL_VERSION(6, 3, 0) <= LINUX_VERSION_CODE
#define oom_ext_mnt_idmap(mnt) mnt_idmap(mnt)
#else
#define oom_ext_mnt_idmap(mnt) mnt_user_ns(mnt)
#endif

/*
 * 6.16 renamed lookup_one_len() to lookup_noperm() and made it take a
 * qstr (not built here: Debian 12 has no 6.16; kept so the change has one
 * place when it comes).
 */
#if KERNEL_VERSION(6, 16, 0) <= LINUX_VERSION_CODE
#define oom_ext_lookup(name, base) lookup_noperm(&QSTR(name), base)
#else
#define oom_ext_lookup(name, base) lookup_one_len(name, base, strlen(name))
#endif

#endif /* OOM_EXT_COMPAT_H */
