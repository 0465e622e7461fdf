// SPDX-License-Identifier: GPL-2.0
/*
 * The crash-flag file: created with O_CREAT|O_EXCL (never through an
 * existing path), fsync'd with its directory, and removed only while it is
 * still the inode we created. Called from the flag work item only (one at a
 * time), and from module exit after that work is cancelled.
 */
#include "oom_ext.h"

#include <linux/dcache.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/string.h>

#include "compat.h"

/* The flag file we created, so that we only ever remove that one. */
static struct {
	char path[FLAG_NAME_MAX + 1];
	struct super_block *sb;		/* compared, never dereferenced */
	unsigned long ino;
	u32 generation;
	bool ours;
} flag_file;

void oom_ext_read_boot_id(char *buf, size_t size)
{
	struct file *f;
	loff_t pos = 0;
	ssize_t n;

	strscpy(buf, "unknown", size);
	f = filp_open("/proc/sys/kernel/random/boot_id", O_RDONLY, 0);
	if (IS_ERR(f))
		return;
	n = kernel_read(f, buf, size - 1, &pos);
	if (n > 0) {
		buf[n] = '\0';
		strim(buf);
	} else {
		strscpy(buf, "unknown", size);
	}
	filp_close(f, NULL);
}

/* Parent directory of an absolute path, "/" for a top-level name. */
static void dir_of(const char *path, char *dir, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t len = slash > path ? slash - path : 1;

	strscpy(dir, path, min(len + 1, size));
}

static void fsync_dir(const char *path)
{
	char dir[FLAG_NAME_MAX + 1];
	struct file *f;
	int err;

	dir_of(path, dir, sizeof(dir));
	f = filp_open(dir, O_RDONLY | O_DIRECTORY, 0);
	if (IS_ERR(f)) {
		pr_warn("crash flag: cannot open directory %s to fsync it (%ld)\n",
			dir, PTR_ERR(f));
		return;
	}
	err = vfs_fsync(f, 0);
	if (err && err != -EINVAL)	/* some file systems cannot sync dirs */
		pr_warn("crash flag: fsync of directory %s failed (%d)\n", dir, err);
	filp_close(f, NULL);
}

/* Why a path we could not create is left alone. */
static const char *existing_kind(const char *path)
{
	struct path p;
	const char *kind = "unknown";

	if (kern_path(path, 0, &p))	/* no LOOKUP_FOLLOW */
		return kind;
	if (d_is_symlink(p.dentry))
		kind = "a symlink (not followed)";
	else if (d_is_reg(p.dentry))
		kind = "an existing file (left from an earlier OOM?)";
	else
		kind = "not a regular file";
	path_put(&p);
	return kind;
}

/*
 * Create @path holding @text, fsync it and its directory. Returns 0 or a
 * negative errno (logged).
 */
int oom_ext_flag_create(const char *path, const char *text, size_t len)
{
	struct file *f;
	loff_t pos = 0;
	ssize_t n;
	int err;

	strscpy(flag_file.path, path, sizeof(flag_file.path));
	/* O_EXCL never follows a symlink in the last component. */
	f = filp_open(flag_file.path,
		      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_LARGEFILE, 0644);
	if (IS_ERR(f)) {
		if (PTR_ERR(f) == -EEXIST)
			pr_warn("crash flag: %s is %s: left alone\n",
				flag_file.path, existing_kind(flag_file.path));
		else
			pr_warn("crash flag: cannot create %s (%ld)\n",
				flag_file.path, PTR_ERR(f));
		return PTR_ERR(f);
	}
	flag_file.sb = file_inode(f)->i_sb;
	flag_file.ino = file_inode(f)->i_ino;
	flag_file.generation = file_inode(f)->i_generation;
	flag_file.ours = true;

	n = kernel_write(f, text, len, &pos);
	err = n == len ? vfs_fsync(f, 0) : (n < 0 ? (int)n : -EIO);
	filp_close(f, NULL);
	if (err) {
		pr_warn("crash flag: writing %s failed (%d)\n", flag_file.path, err);
		return err;
	}
	fsync_dir(flag_file.path);
	pr_info("crash flag %s created\n", flag_file.path);
	return 0;
}

bool oom_ext_flag_ours(void)
{
	return flag_file.ours;
}

/*
 * Remove the flag file, but only if it is still the file we created.
 * Returns false when a flag of ours could not be removed.
 */
bool oom_ext_flag_remove(void)
{
	char dir[FLAG_NAME_MAX + 1];
	const char *base;
	struct dentry *d;
	struct inode *inode;
	struct path parent;
	int err;

	if (!flag_file.ours)
		return true;
	flag_file.ours = false;
	dir_of(flag_file.path, dir, sizeof(dir));
	base = strrchr(flag_file.path, '/') + 1;

	err = kern_path(dir, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &parent);
	if (err)
		goto fail;
	err = mnt_want_write(parent.mnt);
	if (err)
		goto put_parent;
	inode_lock_nested(d_inode(parent.dentry), I_MUTEX_PARENT);
	d = oom_ext_lookup(base, parent.dentry);
	if (IS_ERR(d)) {
		err = PTR_ERR(d);
		goto unlock;
	}
	inode = d_inode(d);
	if (!inode || !d_is_reg(d) || inode->i_sb != flag_file.sb ||
	    inode->i_ino != flag_file.ino ||
	    inode->i_generation != flag_file.generation) {
		err = -ESTALE;	/* replaced by something else: not ours */
		goto put_dentry;
	}
	err = vfs_unlink(oom_ext_mnt_idmap(parent.mnt),
			 d_inode(parent.dentry), d, NULL);
put_dentry:
	dput(d);
unlock:
	inode_unlock(d_inode(parent.dentry));
	mnt_drop_write(parent.mnt);
put_parent:
	path_put(&parent);
	if (!err) {
		fsync_dir(flag_file.path);
		pr_info("crash flag %s removed\n", flag_file.path);
		return true;
	}
fail:
	if (err == -ESTALE || err == -ENOENT)
		pr_warn("crash flag: %s is no longer the file we created: left alone\n",
			flag_file.path);
	else
		pr_warn("crash flag: cannot remove %s (%d)\n", flag_file.path, err);
	return false;
}

/* Absolute, 1..255 bytes, a file name (no trailing '/'), no ".." component. */
bool oom_ext_flag_name_valid(const char *s)
{
	size_t len = strlen(s);
	const char *c;

	if (!len || len > FLAG_NAME_MAX || s[0] != '/' || s[len - 1] == '/')
		return false;
	for (c = s; *c; c++)
		if (*c < ' ' || *c == 0x7f)
			return false;
	for (c = s; c; c = strchr(c + 1, '/'))
		if (!strncmp(c, "/..", 3) && (c[3] == '/' || !c[3]))
			return false;
	return true;
}
