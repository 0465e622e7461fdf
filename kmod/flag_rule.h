/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The crash-flag path rule, the same as the oom-ext binary's
 * (src/rootfs.rs check_path): 1..FLAG_NAME_MAX bytes, absolute, no trailing
 * '/', no empty, "." or ".." component, every byte printable ASCII other
 * than space and '"'. A header of its own so that tests/flag_rule.rs can
 * compile it on the host and compare both rules on the same inputs.
 */
#ifndef OOM_EXT_FLAG_RULE_H
#define OOM_EXT_FLAG_RULE_H

#ifdef __KERNEL__
#include <linux/string.h>
#include <linux/types.h>
#else
#include <stdbool.h>
#include <string.h>
#endif

static inline bool oom_ext_flag_rule(const char *s, size_t max)
{
	size_t len = strlen(s);
	const unsigned char *c;
	const char *p;

	if (!len || len > max || s[0] != '/' || s[len - 1] == '/')
		return false;
	for (c = (const unsigned char *)s; *c; c++)
		if (*c <= ' ' || *c >= 0x7f || *c == '"')
			return false;
	/* p is at each '/'; the component after it ends at the next '/'. */
	for (p = s; p; p = strchr(p + 1, '/')) {
		if (p[1] == '/')
			return false;
		if (p[1] == '.' && (p[2] == '/' || !p[2]))
			return false;
		if (p[1] == '.' && p[2] == '.' && (p[3] == '/' || !p[3]))
			return false;
	}
	return true;
}

#endif
