//! Finding and loading `oom_ext.ko` (plain, `.ko.xz`, `.ko.zst`) with
//! `finit_module`. Pure lookup in `modules.dep`, thin I/O around it. Paths
//! are relative to the [`Root`] (as [`crate::rootfs`] takes them) and are
//! opened through it; only modprobe's, to run it, is made absolute.

#![forbid(unsafe_code)]

use crate::root::Root;
use crate::{paths, rootfs};
use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};
use std::ffi::CString;

pub const MODULE: &str = "oom_ext";
/// `MODULE_INIT_COMPRESSED_FILE` (Linux 6.1+ uapi/linux/module.h): the
/// kernel decompresses the file itself when built with
/// CONFIG_MODULE_DECOMPRESS (Debian's 6.12 is, its 6.1 is not but ships
/// uncompressed modules).
const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Xz,
    Zstd,
    Gzip,
}

impl Compression {
    pub fn of(path: &str) -> Compression {
        if path.ends_with(".ko.xz") {
            Compression::Xz
        } else if path.ends_with(".ko.zst") {
            Compression::Zstd
        } else if path.ends_with(".ko.gz") {
            Compression::Gzip
        } else {
            Compression::None
        }
    }
}

/// The module's entry in `modules.dep`: path (relative to the modules
/// directory or absolute) and its dependencies.
pub fn find_in_modules_dep(text: &str, name: &str) -> Option<(String, Vec<String>)> {
    for line in text.lines() {
        let Some((path, deps)) = line.split_once(':') else {
            continue;
        };
        let base = path.rsplit('/').next().unwrap_or(path);
        let stem = base.split(".ko").next().unwrap_or(base);
        if base.contains(".ko") && stem.replace('-', "_") == name {
            return Some((
                path.trim().to_string(),
                deps.split_whitespace().map(str::to_string).collect(),
            ));
        }
    }
    None
}

/// A kernel's modules directory, relative to the root.
pub fn modules_dir(release: &str) -> String {
    format!("lib/modules/{release}")
}

/// Where a `modules.dep` entry is, relative to the root: an absolute entry
/// from the root, a relative one in the kernel's modules directory.
pub fn entry_path(release: &str, entry: &str) -> String {
    match entry.strip_prefix('/') {
        Some(abs) => abs.trim_start_matches('/').to_string(),
        None => format!("{}/{entry}", modules_dir(release)),
    }
}

/// The running kernel's release, read under the root so tests can fake it.
pub fn kernel_release(root: &Root) -> Option<String> {
    let s = String::from_utf8(rootfs::read_small(root, paths::OSRELEASE)?).ok()?;
    let s = s.trim();
    (!s.is_empty() && !s.contains('/') && s != "." && s != "..").then(|| s.to_string())
}

/// The module's directory in sysfs, there while it is loaded.
const SYSFS_DIR: &str = "sys/module/oom_ext";

pub fn is_loaded(root: &Root) -> bool {
    rootfs::open_dir(root, SYSFS_DIR).is_ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadResult {
    Loaded,
    AlreadyLoaded,
    Failed(String),
}

/// What an errno from `finit_module` means for the person reading the log.
pub fn explain(e: Errno, compression: Compression) -> String {
    match e {
        Errno::EPERM => "not permitted (kernel lockdown, modules disabled, or no CAP_SYS_MODULE)".into(),
        Errno::EKEYREJECTED => "signature rejected (Secure Boot: sign the module with an enrolled MOK)".into(),
        Errno::ENOKEY => "module is not signed with a key the kernel trusts (Secure Boot)".into(),
        Errno::ENOEXEC => "not a valid module for this kernel (built for another kernel?)".into(),
        Errno::ENOENT => "module file vanished".into(),
        Errno::EOPNOTSUPP if compression != Compression::None => {
            "this kernel cannot decompress modules (no CONFIG_MODULE_DECOMPRESS): install it uncompressed".into()
        }
        Errno::EINVAL if compression != Compression::None => {
            "kernel refused the compressed module (too old for MODULE_INIT_COMPRESSED_FILE or a different compression)"
                .into()
        }
        Errno::EBADMSG => "compressed module is damaged".into(),
        e => format!("finit_module failed: {}", e.desc()),
    }
}

/// Loads the module file at `path` (relative to the root) with the given
/// parameters. Symlinks on the way resolve inside the root (never out of
/// it); a FIFO does not block the open, and anything but a regular file is
/// refused.
pub fn load(root: &Root, path: &str, compression: Compression, args: &str) -> LoadResult {
    let opened = rootfs::open(
        root,
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK,
        nix::sys::stat::Mode::empty(),
    );
    let file = match opened.map(std::fs::File::from) {
        Ok(f) => f,
        Err(e) => return LoadResult::Failed(format!("cannot open /{path}: {e}")),
    };
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return LoadResult::Failed(format!("/{path} is not a regular file")),
        Err(e) => return LoadResult::Failed(format!("cannot stat /{path}: {e}")),
    }
    let Ok(args) = CString::new(args) else {
        return LoadResult::Failed("parameters contain NUL".into());
    };
    let flags = if compression == Compression::None {
        ModuleInitFlags::empty()
    } else {
        ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
    };
    match finit_module(&file, &args, flags) {
        Ok(()) => LoadResult::Loaded,
        Err(Errno::EEXIST) => LoadResult::AlreadyLoaded,
        Err(e) => LoadResult::Failed(explain(e, compression)),
    }
}

/// Where modprobe lives under the root (relative to it), if anywhere: a
/// regular file, symlinks followed inside the root (`/sbin/modprobe` is
/// often a link to kmod).
pub fn find_modprobe(root: &Root) -> Option<String> {
    [
        "usr/sbin/modprobe",
        "sbin/modprobe",
        "usr/bin/modprobe",
        "bin/modprobe",
    ]
    .into_iter()
    .find(|p| {
        rootfs::open(
            root,
            p,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
        .and_then(|fd| nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).ok())
        .is_some_and(|st| rootfs::is_regular(&st))
    })
    .map(str::to_string)
}

/// Loads the module through the modprobe at `modprobe` (relative to the
/// root, which is the running system's: modprobe acts on this kernel).
/// Used when the kernel refuses a compressed module that libkmod can still
/// decompress itself (Debian 12's dkms compresses with xz's default CRC64
/// check, which the in-kernel xz decoder of 6.12 rejects with EINVAL), and
/// where there is no `modules.dep`.
pub fn load_with_modprobe(root: &Root, modprobe: &str, args: &str) -> LoadResult {
    let out = std::process::Command::new(root.join(modprobe))
        .arg(MODULE)
        .args(args.split_whitespace())
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => LoadResult::Loaded,
        Ok(o) => LoadResult::Failed(format!(
            "/{modprobe} {MODULE} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => LoadResult::Failed(format!("cannot run /{modprobe}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_plain_and_compressed_entries() {
        let dep = "kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko\nupdates/dkms/oom_ext.ko.xz:\nkernel/x/oom_extra.ko:\n";
        assert_eq!(
            find_in_modules_dep(dep, "oom_ext"),
            Some(("updates/dkms/oom_ext.ko.xz".into(), vec![]))
        );
        assert_eq!(
            find_in_modules_dep("extra/oom-ext.ko.zst: a.ko b.ko", "oom_ext"),
            Some((
                "extra/oom-ext.ko.zst".into(),
                vec!["a.ko".into(), "b.ko".into()]
            ))
        );
        assert_eq!(
            find_in_modules_dep("kernel/oom_extension.ko:\n\0garbage\n:::\n", "oom_ext"),
            None
        );
        assert_eq!(find_in_modules_dep("", "oom_ext"), None);
        assert_eq!(Compression::of("a/oom_ext.ko.zst"), Compression::Zstd);
        assert_eq!(Compression::of("a/oom_ext.ko"), Compression::None);
    }

    #[test]
    fn modprobe_is_a_regular_file_found_inside_the_root() {
        let base = std::env::temp_dir().join(format!("oom-ext-modprobe-{}", std::process::id()));
        let r = base.join("root");
        let _ = std::fs::remove_dir_all(&base);
        for d in ["usr/sbin", "sbin", "bin"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(base.join("kmod"), "outside").unwrap();
        let root = Root::new(&r);
        // A link out of the root resolves inside it (to nothing); a
        // directory is no modprobe.
        std::os::unix::fs::symlink(base.join("kmod"), r.join("usr/sbin/modprobe")).unwrap();
        std::fs::create_dir_all(r.join("sbin/modprobe")).unwrap();
        assert_eq!(find_modprobe(&root), None);
        // Debian's: a relative link to kmod.
        std::fs::write(r.join("bin/kmod"), "kmod").unwrap();
        std::os::unix::fs::symlink("kmod", r.join("bin/modprobe")).unwrap();
        assert_eq!(find_modprobe(&root).as_deref(), Some("bin/modprobe"));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn entries_are_paths_relative_to_the_root() {
        assert_eq!(
            entry_path("6.1.0", "updates/dkms/oom_ext.ko"),
            "lib/modules/6.1.0/updates/dkms/oom_ext.ko"
        );
        assert_eq!(
            entry_path("6.1.0", "//opt/m/oom_ext.ko"),
            "opt/m/oom_ext.ko"
        );
    }

    #[test]
    fn errors_are_explained() {
        assert!(explain(Errno::EKEYREJECTED, Compression::None).contains("Secure Boot"));
        assert!(explain(Errno::EOPNOTSUPP, Compression::Xz).contains("CONFIG_MODULE_DECOMPRESS"));
        assert!(explain(Errno::EPERM, Compression::None).contains("lockdown"));
    }
}
