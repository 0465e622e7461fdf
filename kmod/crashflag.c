// SPDX-License-Identifier: GPL-2.0
/*
 * The crash-flag file: created with O_CREAT|O_EXCL (never through an
 * existing path), fsync'd with its directory, and removed only while it is
 * still the inode we created, in the directory it was created in. Called
 * from the flag work item only (one at a time), and from module exit after
 * that work has finished.
 *
 * Paths resolve against the root of kernel threads (init_fs, shared with
 * pid 1): before switch_root that is the initramfs, after it the real root.
 */
#include "oom_ext.h"

#include <linux/cred.h>
#include <linux/dcache.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/path.h>
#include <linux/sched.h>
#include <linux/string.h>

#include "compat.h"
#include "flag_rule.h"

/* The flag file we created, so that we only ever remove that one. */
static struct {
	char path[FLAG_NAME_MAX + 1];	/* as created */
	struct path parent;		/* held from creation until removal */
	const char *base;		/* last component, inside path */
	struct super_block *sb;		/* compared, never dereferenced */
	unsigned long ino;
	u32 generation;
	bool ours;
	int last_err;			/* of create: log each new one once */
} flag_file;

/* Read a small text file (a sysctl), trailing white space cut. */
int oom_ext_read_small_file(const char *path, char *buf, size_t size)
{
	struct file *f;
	loff_t pos = 0;
	ssize_t n;

	buf[0] = '\0';
	f = filp_open(path, O_RDONLY, 0);
	if (IS_ERR(f))
		return PTR_ERR(f);
	n = kernel_read(f, buf, size - 1, &pos);
	filp_close(f, NULL);
	if (n <= 0)
		return n ? (int)n : -ENODATA;
	buf[n] = '\0';
	strim(buf);		/* no leading white space in a sysctl */
	return 0;
}

static void fsync_parent(void)
{
	struct file *f;
	int err;

	f = dentry_open(&flag_file.parent, O_RDONLY | O_DIRECTORY, current_cred());
	if (IS_ERR(f)) {
		pr_warn("crash flag: cannot open the directory of %s to fsync it (%ld)\n",
			flag_file.path, PTR_ERR(f));
		return;
	}
	err = vfs_fsync(f, 0);
	if (err && err != -EINVAL)	/* some file systems cannot sync dirs */
		pr_warn("crash flag: fsync of the directory of %s failed (%d)\n",
			flag_file.path, err);
	fput(f);
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

/* Give up a flag of ours without touching the file. */
void oom_ext_flag_forget(void)
{
	if (!flag_file.ours)
		return;
	flag_file.ours = false;
	path_put(&flag_file.parent);
}

/*
 * Remove the flag file, but only if it is still the file we created.
 * Returns 0 when no flag of ours is left (removed, or replaced by something
 * that is not ours, which is left alone), else a negative errno: the flag
 * stays ours and the caller may retry.
 */
int oom_ext_flag_remove(void)
{
	struct dentry *dir, *d;
	struct inode *inode;
	int err;

	if (!flag_file.ours)
		return 0;
	dir = flag_file.parent.dentry;
	err = mnt_want_write(flag_file.parent.mnt);
	if (err)
		goto out;
	inode_lock_nested(d_inode(dir), I_MUTEX_PARENT);
	d = oom_ext_lookup(flag_file.base, dir);
	if (IS_ERR(d)) {
		err = PTR_ERR(d);
		goto unlock;
	}
	inode = d_inode(d);
	if (!inode || !d_is_reg(d) || inode->i_sb != flag_file.sb ||
	    inode->i_ino != flag_file.ino ||
	    inode->i_generation != flag_file.generation)
		err = -ESTALE;	/* gone, or replaced by something else */
	else
		err = vfs_unlink(oom_ext_mnt_idmap(flag_file.parent.mnt),
				 d_inode(dir), d, NULL);
	dput(d);
unlock:
	inode_unlock(d_inode(dir));
	mnt_drop_write(flag_file.parent.mnt);
out:
	if (!err) {
		fsync_parent();
		pr_info("crash flag %s removed\n", flag_file.path);
	} else if (err == -ESTALE) {
		pr_warn("crash flag: %s is no longer the file we created: left alone\n",
			flag_file.path);
	} else {
		pr_warn("crash flag: cannot remove %s (%d), will retry\n",
			flag_file.path, err);
		return err;
	}
	oom_ext_flag_forget();
	return 0;
}

/* Ours, and reachable from the kworkers' root (not left behind by switch_root). */
bool oom_ext_flag_reachable(void)
{
	struct path root;
	bool under;

	if (!flag_file.ours)
		return false;
	get_fs_root(current->fs, &root);
	under = path_is_under(&flag_file.parent, &root);
	path_put(&root);
	return under;
}

/* Where our flag is, "" when none. Does not sleep. */
void oom_ext_flag_path(char *buf, size_t size)
{
	strscpy(buf, flag_file.ours ? flag_file.path : "", size);
}

static void create_failed(int err, const char *what)
{
	if (err != flag_file.last_err)
		pr_warn("crash flag: %s %s (%d), retrying every second while the OOM state lasts\n",
			what, flag_file.path, err);
	flag_file.last_err = err;
}

/*
 * Create @path holding @text, fsync it and its directory. Returns 0 or a
 * negative errno (logged once per new error). A flag of ours that is no
 * longer reachable is removed (through the directory it was made in) first.
 */
int oom_ext_flag_create(const char *path, const char *text, size_t len)
{
	struct file *f;
	loff_t pos = 0;
	ssize_t n;
	int err;

	if (flag_file.ours) {
		pr_warn("crash flag %s is outside the current root (written before switch_root?): writing it again\n",
			flag_file.path);
		if (oom_ext_flag_remove())
			oom_ext_flag_forget();
	}
	strscpy(flag_file.path, path, sizeof(flag_file.path));
	/* O_EXCL never follows a symlink in the last component. */
	f = filp_open(flag_file.path, O_WRONLY | O_CREAT | O_EXCL | O_LARGEFILE, 0644);
	if (IS_ERR(f)) {
		err = PTR_ERR(f);
		if (err == -EEXIST && err != flag_file.last_err)
			pr_warn("crash flag: %s is %s: left alone\n",
				flag_file.path, existing_kind(flag_file.path));
		create_failed(err, "cannot create");
		return err;
	}
	flag_file.sb = file_inode(f)->i_sb;
	flag_file.ino = file_inode(f)->i_ino;
	flag_file.generation = file_inode(f)->i_generation;
	flag_file.parent.mnt = mntget(f->f_path.mnt);
	flag_file.parent.dentry = dget_parent(f->f_path.dentry);
	flag_file.base = strrchr(flag_file.path, '/') + 1;
	flag_file.ours = true;

	n = kernel_write(f, text, len, &pos);
	err = n == len ? vfs_fsync(f, 0) : (n < 0 ? (int)n : -EIO);
	fput(f);
	if (err) {
		create_failed(err, "writing failed, removed");
		/* A partial flag must not read as present. */
		if (oom_ext_flag_remove())
			oom_ext_flag_forget();
		return err;
	}
	fsync_parent();
	flag_file.last_err = 0;
	pr_info("crash flag %s created\n", flag_file.path);
	return 0;
}

/* The crash-flag path rule: kmod/flag_rule.h (the binary's rule too). */
bool oom_ext_flag_name_valid(const char *s)
{
	return oom_ext_flag_rule(s, FLAG_NAME_MAX);
}
