//! Finding and loading `oom_ext.ko` (plain, `.ko.xz`, `.ko.zst`) with
//! `finit_module`. Pure lookup in `modules.dep`, thin I/O around it.

#![forbid(unsafe_code)]

use crate::root::Root;
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

/// The running kernel's release, read under the root so tests can fake it.
pub fn kernel_release(root: &Root) -> Option<String> {
    let s = std::fs::read_to_string(root.join("proc/sys/kernel/osrelease")).ok()?;
    let s = s.trim();
    (!s.is_empty() && !s.contains('/') && s != "." && s != "..").then(|| s.to_string())
}

pub fn is_loaded(root: &Root) -> bool {
    root.join("sys/module").join(MODULE).exists()
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

/// Loads the module file under `root` with the given parameters. Symlinks
/// on the way resolve inside the root (never out of it); a FIFO does not
/// block the open, and anything but a regular file is refused.
pub fn load(
    root: &Root,
    path: &std::path::Path,
    compression: Compression,
    args: &str,
) -> LoadResult {
    let inside = path.strip_prefix(root.dir()).unwrap_or(path);
    let opened = crate::rootfs::open(
        root,
        &inside.to_string_lossy(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK,
        nix::sys::stat::Mode::empty(),
    );
    let file = match opened.map(std::fs::File::from) {
        Ok(f) => f,
        Err(e) => return LoadResult::Failed(format!("cannot open {}: {e}", path.display())),
    };
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return LoadResult::Failed(format!("{} is not a regular file", path.display())),
        Err(e) => return LoadResult::Failed(format!("cannot stat {}: {e}", path.display())),
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

/// Where modprobe lives, under `root`, if anywhere.
pub fn find_modprobe(root: &Root) -> Option<std::path::PathBuf> {
    [
        "usr/sbin/modprobe",
        "sbin/modprobe",
        "usr/bin/modprobe",
        "bin/modprobe",
    ]
    .iter()
    .map(|p| root.join(p))
    .find(|p| p.is_file())
}

/// Loads the module through modprobe. Used when the kernel refuses a
/// compressed module that libkmod can still decompress itself (Debian 12's
/// dkms compresses with xz's default CRC64 check, which the in-kernel xz
/// decoder of 6.12 rejects with EINVAL).
pub fn load_with_modprobe(modprobe: &std::path::Path, args: &str) -> LoadResult {
    let out = std::process::Command::new(modprobe)
        .arg(MODULE)
        .args(args.split_whitespace())
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => LoadResult::Loaded,
        Ok(o) => LoadResult::Failed(format!(
            "{} {MODULE} failed ({}): {}",
            modprobe.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => LoadResult::Failed(format!("cannot run {}: {e}", modprobe.display())),
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
    fn errors_are_explained() {
        assert!(explain(Errno::EKEYREJECTED, Compression::None).contains("Secure Boot"));
        assert!(explain(Errno::EOPNOTSUPP, Compression::Xz).contains("CONFIG_MODULE_DECOMPRESS"));
        assert!(explain(Errno::EPERM, Compression::None).contains("lockdown"));
    }
}
