//! The one file layer for paths under a [`Root`]: every path is resolved
//! inside the root (`openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`),
//! the last component is never a followed symlink, reads are capped and
//! refuse anything but a regular file, writes go to an unpredictable
//! `O_EXCL` temp file in the target directory and are renamed into place.
//! Nothing here truncates an existing path or blocks on a FIFO.

use crate::root::Root;
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, renameat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode};
use nix::unistd::{fsync, unlinkat, UnlinkatFlags};
use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// Small run-time files (params, mode, status, state, pid, cmdline, flag).
pub const SMALL: usize = 64 * 1024;

/// Why a file was not read (or written) as asked.
#[derive(Debug)]
pub enum Error {
    /// Nothing at that path.
    Missing,
    /// Something that is not a regular file (or not a directory where one
    /// is needed): never opened. The word names its kind.
    NotRegular(&'static str),
    /// Larger than the cap (its size as `fstat` tells, or at least cap+1).
    TooBig {
        cap: usize,
        size: u64,
    },
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Missing => write!(f, "does not exist"),
            Error::NotRegular(k) => write!(f, "is a {k}, not a regular file: not opened"),
            Error::TooBig { cap, size } => {
                write!(f, "is {size} bytes, over the {cap}-byte cap: not read")
            }
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            Error::Missing => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

fn io_err(e: Errno) -> Error {
    match e {
        Errno::ENOENT => Error::Missing,
        e => Error::Io(io::Error::from_raw_os_error(e as i32)),
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The configured-path rule (flag paths, `--flag`), the same as the
/// module's: absolute, at most 255 bytes, no empty, `.` or `..`
/// component, no trailing `/`, bytes 0x21..=0x7e only (no space, no
/// control byte, nothing that needs quoting on the command line but `"`
/// is refused too, as the kernel's parser would eat it).
pub fn check_path(p: &[u8]) -> std::result::Result<(), &'static str> {
    if p.is_empty() {
        return Err("empty");
    }
    if p.len() > 255 {
        return Err("longer than 255 bytes");
    }
    if p[0] != b'/' {
        return Err("not absolute");
    }
    if p.len() > 1 && p.ends_with(b"/") {
        return Err("names a directory");
    }
    if let Some(b) = p
        .iter()
        .find(|&&b| !(0x21..=0x7e).contains(&b) || b == b'"')
    {
        return Err(if *b == b' ' || *b == b'"' {
            "has spaces or quotes"
        } else {
            "has a byte outside 0x21..0x7e"
        });
    }
    for c in p[1..].split(|&b| b == b'/') {
        match c {
            b"" => return Err("has an empty component"),
            b"." => return Err("has a . component"),
            b".." => return Err("has a .. component"),
            _ => {}
        }
    }
    if p == b"/" {
        return Err("names a directory");
    }
    Ok(())
}

/// `path` relative to the root (leading `/` dropped; the root is ".").
fn rel(path: &str) -> &str {
    let r = path.trim_start_matches('/');
    if r.is_empty() {
        "."
    } else {
        r
    }
}

fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: every caller passes a descriptor a syscall just returned,
    // owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn root_fd(root: &Root) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        root.dir(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ENOTDIR => Error::NotRegular("not a directory (as --root)"),
        e => io_err(e),
    })?;
    Ok(own(fd))
}

/// Opens `path` inside the root; symlinks on the way resolve as if the
/// root were `/`, magic links (`/proc/PID/fd/N`) are refused.
pub fn open(root: &Root, path: &str, flags: OFlag, mode: Mode) -> Result<OwnedFd> {
    let rfd = root_fd(root)?;
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
        .mode(mode)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match openat2(rfd.as_raw_fd(), rel(path), how) {
        Ok(fd) => Ok(own(fd)),
        // Without openat2 (Linux < 5.6) the real root cannot be escaped
        // anyway: resolve normally there, refuse a fake root.
        Err(Errno::ENOSYS) if root.is_system() => {
            let fd = openat(Some(rfd.as_raw_fd()), rel(path), flags | OFlag::O_CLOEXEC, mode)
                .map_err(io_err)?;
            Ok(own(fd))
        }
        Err(Errno::ENOSYS) => Err(Error::Io(io::Error::new(
            io::ErrorKind::Unsupported,
            "this kernel has no openat2 (Linux 5.6+ needed): paths under --root cannot be resolved safely",
        ))),
        Err(Errno::ELOOP) if flags.contains(OFlag::O_NOFOLLOW) => Err(Error::NotRegular("symlink")),
        Err(Errno::EXDEV) => Err(Error::Io(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "path leads through a magic link: refused",
        ))),
        Err(e) => Err(io_err(e)),
    }
}

/// A directory inside the root, opened for `*at` calls.
pub struct Dir {
    fd: OwnedFd,
}

/// The directory holding `path` and the last component's name.
pub fn parent(root: &Root, path: &str) -> Result<(Dir, CString)> {
    let r = rel(path);
    let (dir, name) = match r.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => (".", r),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path:?} does not name a file"),
        )));
    }
    let fd = open(
        root,
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )?;
    let name = CString::new(name).map_err(|_| Error::Io(io::ErrorKind::InvalidInput.into()))?;
    Ok((Dir { fd }, name))
}

/// Whether `after` (`fstat` of what was opened) is the file `before`
/// (its `lstat`) showed: the same device and inode, or on procfs
/// (`on_proc`, asked only then) the same device and kind.
fn same_file(before: &FileStat, after: &FileStat, on_proc: impl FnOnce() -> bool) -> bool {
    let kind_of = |st: &FileStat| st.st_mode & libc::S_IFMT;
    before.st_dev == after.st_dev
        && kind_of(before) == kind_of(after)
        && (before.st_ino == after.st_ino || on_proc())
}

/// The kind word of a `st_mode`.
pub fn kind(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "regular file",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "FIFO",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR | libc::S_IFBLK => "device",
        _ => "unknown file type",
    }
}

pub fn is_regular(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

impl Dir {
    /// `lstat` of one entry (never follows it).
    pub fn lstat(&self, name: &CStr) -> Result<FileStat> {
        fstatat(
            Some(self.fd.as_raw_fd()),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io_err)
    }

    pub fn read_link(&self, name: &CStr) -> Result<Vec<u8>> {
        nix::fcntl::readlinkat(Some(self.fd.as_raw_fd()), name)
            .map(|s| s.as_bytes().to_vec())
            .map_err(io_err)
    }

    /// Opens an existing `name` in this directory with `access`, never
    /// following a symlink, blocking on a FIFO or taking a terminal; and
    /// what it is.
    fn open_existing(&self, name: &CStr, access: OFlag) -> Result<(OwnedFd, FileStat)> {
        let fd = openat(
            Some(self.fd.as_raw_fd()),
            name,
            access | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ELOOP => Error::NotRegular("symlink"),
            e => io_err(e),
        })?;
        let fd = own(fd);
        let st = fstat(fd.as_raw_fd()).map_err(io_err)?;
        Ok((fd, st))
    }

    /// Opens a regular file for reading: `O_NOFOLLOW | O_NONBLOCK`, then
    /// `fstat` must show the same regular file as the `lstat` before. On
    /// procfs only the kind and device must match: it gives `/proc/PID/*`
    /// and `/proc/sys/*` files a new inode number when their dentry was
    /// reclaimed in between (`get_next_ino`), and memory pressure, when the
    /// guard reads them, is when that happens.
    pub fn open_regular(&self, name: &CStr) -> Result<(std::fs::File, FileStat)> {
        let before = self.lstat(name)?;
        if !is_regular(&before) {
            return Err(Error::NotRegular(kind(before.st_mode)));
        }
        let (fd, st) = self.open_existing(name, OFlag::O_RDONLY)?;
        let on_proc = || crate::sys::fs_of(&fd) == crate::sys::Fs::Proc;
        if !is_regular(&st) || !same_file(&before, &st, on_proc) {
            return Err(Error::NotRegular("file replaced while opening"));
        }
        Ok((std::fs::File::from(fd), st))
    }

    /// Reads at most `cap` bytes of the regular file `name` in this
    /// directory ([`Dir::open_regular`]).
    pub fn read_head(&self, name: &CStr, cap: usize) -> Result<Capped> {
        let (f, st) = self.open_regular(name)?;
        read_capped_file(f, &st, cap)
    }

    /// Writes `data` as `name`: a temp file with an unpredictable name,
    /// created `O_EXCL`, fsynced, renamed over `name`; the directory is
    /// fsynced. An existing `name` is replaced, never truncated or followed.
    pub fn replace(&self, name: &CStr, data: &[u8], mode: u32) -> Result<()> {
        let tmp = temp_name(name);
        let fd = openat(
            Some(self.fd.as_raw_fd()),
            tmp.as_c_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(io_err)?;
        let mut f = std::fs::File::from(own(fd));
        let done = f
            .write_all(data)
            .and_then(|_| f.sync_all())
            .map_err(Error::Io)
            .and_then(|_| {
                renameat(
                    Some(self.fd.as_raw_fd()),
                    tmp.as_c_str(),
                    Some(self.fd.as_raw_fd()),
                    name,
                )
                .map_err(io_err)
            });
        if done.is_err() {
            let _ = unlinkat(
                Some(self.fd.as_raw_fd()),
                tmp.as_c_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
        done?;
        self.sync()
    }

    /// Creates `name` with `O_CREAT | O_EXCL | O_NOFOLLOW`, writes and
    /// fsyncs it and the directory. An existing entry (a symlink too) is an
    /// error (`AlreadyExists`): never overwritten or followed.
    pub fn create_new(&self, name: &CStr, data: &[u8], mode: u32) -> Result<()> {
        let fd = openat(
            Some(self.fd.as_raw_fd()),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(io_err)?;
        let mut f = std::fs::File::from(own(fd));
        f.write_all(data)
            .and_then(|_| f.sync_all())
            .map_err(Error::Io)?;
        self.sync()
    }

    /// Appends to an existing regular file with one link (a hard link to
    /// another file is not written), never creating or following it.
    pub fn append(&self, name: &CStr, data: &[u8]) -> Result<()> {
        let (fd, st) = self.open_existing(name, OFlag::O_WRONLY | OFlag::O_APPEND)?;
        if !is_regular(&st) {
            return Err(Error::NotRegular(kind(st.st_mode)));
        }
        if st.st_nlink != 1 {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "a regular file with more than one link: not written",
            )));
        }
        let mut f = std::fs::File::from(fd);
        f.write_all(data)
            .and_then(|_| f.sync_all())
            .map_err(Error::Io)
    }

    /// Removes the entry itself (never a symlink's target, never a
    /// directory). A missing entry is fine.
    pub fn remove(&self, name: &CStr) -> Result<()> {
        match unlinkat(Some(self.fd.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(io_err(e)),
        }
        self.sync()
    }

    /// Creates `name` as a symlink to `target` (an existing entry is an
    /// error, never replaced).
    pub fn symlink(&self, target: &str, name: &CStr) -> Result<()> {
        nix::unistd::symlinkat(target, Some(self.fd.as_raw_fd()), name).map_err(io_err)?;
        self.sync()
    }

    pub fn sync(&self) -> Result<()> {
        fsync(self.fd.as_raw_fd()).map_err(io_err)
    }

    /// The entries (but `.` and `..`), as raw names with their `lstat`.
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, FileStat)>> {
        let dup = nix::unistd::dup(self.fd.as_raw_fd()).map_err(io_err)?;
        // SAFETY: `dup` is a fresh descriptor; fdopendir takes it over and
        // closedir below closes it. The DIR is used only in this function.
        let dirp = unsafe { libc::fdopendir(dup) };
        if dirp.is_null() {
            let e = io::Error::last_os_error();
            let _ = nix::unistd::close(dup);
            return Err(Error::Io(e));
        }
        let mut names = Vec::new();
        loop {
            // SAFETY: dirp is a valid open DIR (checked above).
            let ent = unsafe { libc::readdir64(dirp) };
            if ent.is_null() {
                break;
            }
            // SAFETY: readdir64 returned a valid entry whose d_name is a
            // NUL-terminated string, valid until the next readdir64 call;
            // it is copied at once.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            let b = name.to_bytes();
            if b != b"." && b != b".." {
                names.push(name.to_owned());
            }
        }
        // SAFETY: dirp is valid and closed exactly once.
        unsafe { libc::closedir(dirp) };
        let mut out = Vec::new();
        for n in names {
            if let Ok(st) = self.lstat(&n) {
                out.push((n.into_bytes(), st));
            }
        }
        Ok(out)
    }
}

/// `.NAME.XXXXXXXXXXXXXXXX.tmp` with 64 random bits.
fn temp_name(name: &CStr) -> CString {
    let mut r = [0u8; 8];
    // SAFETY: the buffer is valid for r.len() bytes.
    let n = unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) };
    if n != r.len() as isize {
        // No getrandom: time and pid still make it unpredictable enough to
        // an attacker who must win an O_EXCL race.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        r = (t ^ (u64::from(std::process::id()) << 40)).to_le_bytes();
    }
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let base: Vec<u8> = name.to_bytes().iter().take(200).copied().collect();
    let mut v = b".".to_vec();
    v.extend_from_slice(&base);
    v.extend_from_slice(format!(".{hex}.tmp").as_bytes());
    // `name` came from a CStr and the rest is ASCII: no NUL.
    CString::new(v).unwrap_or_default()
}

/// A capped read: the bytes (at most `cap`) and whether there was more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capped {
    pub bytes: Vec<u8>,
    pub truncated: bool,
    /// `st_size` (0 for most of /proc and /sys).
    pub size: u64,
}

fn read_capped_file(f: std::fs::File, st: &FileStat, cap: usize) -> Result<Capped> {
    let mut bytes = Vec::new();
    f.take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::Io)?;
    let truncated = bytes.len() > cap;
    bytes.truncate(cap);
    Ok(Capped {
        bytes,
        truncated,
        size: st.st_size.max(0) as u64,
    })
}

/// Reads at most `cap` bytes of a regular file inside the root.
pub fn read_head(root: &Root, path: &str, cap: usize) -> Result<Capped> {
    let (dir, name) = parent(root, path)?;
    let (f, st) = dir.open_regular(&name)?;
    read_capped_file(f, &st, cap)
}

/// Reads a whole regular file inside the root of at most `cap` bytes; a
/// larger one is [`Error::TooBig`].
pub fn read(root: &Root, path: &str, cap: usize) -> Result<Vec<u8>> {
    let c = read_head(root, path, cap)?;
    if c.truncated {
        return Err(Error::TooBig {
            cap,
            size: c.size.max(cap as u64 + 1),
        });
    }
    Ok(c.bytes)
}

/// [`read`] of a small file, `None` when missing, unreadable, too big or
/// not a regular file.
pub fn read_small(root: &Root, path: &str) -> Option<Vec<u8>> {
    read(root, path, SMALL).ok()
}

/// Writes `data` at `path` inside the root (see [`Dir::replace`]).
pub fn replace(root: &Root, path: &str, data: &[u8], mode: u32) -> Result<()> {
    let (dir, name) = parent(root, path)?;
    dir.replace(&name, data, mode)
}

/// Writes to an existing regular file inside the root (a /proc, /sys or
/// sysctl file): no create, no symlink, never blocking, and nothing is
/// truncated before `fstat` showed a regular file with one link (a hard
/// link in a fake root to another file is not written). A fake root's
/// stand-in with content is then cut to exactly `data`; procfs and
/// cgroupfs files have size 0 and are not truncated.
pub fn write_existing(root: &Root, path: &str, data: &[u8]) -> Result<()> {
    let fd = open(
        root,
        path,
        OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
        Mode::empty(),
    )?;
    let st = fstat(fd.as_raw_fd()).map_err(io_err)?;
    if !is_regular(&st) {
        return Err(Error::NotRegular(kind(st.st_mode)));
    }
    if st.st_nlink != 1 {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "a regular file with more than one link: not written",
        )));
    }
    let mut f = std::fs::File::from(fd);
    if st.st_size > 0 {
        f.set_len(0).map_err(Error::Io)?;
    }
    // One write() is one command for these files.
    f.write_all(data).map_err(Error::Io)
}

/// Opens (creating it if missing) a lock file inside the root, read-write:
/// never following a symlink, never blocking on a FIFO, and only a regular
/// file is kept (anything else is [`Error::NotRegular`]). Never truncated.
pub fn open_lock(root: &Root, path: &str, mode: u32) -> Result<std::fs::File> {
    let fd = open(
        root,
        path,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
        Mode::from_bits_truncate(mode),
    )?;
    let st = fstat(fd.as_raw_fd()).map_err(io_err)?;
    if !is_regular(&st) {
        return Err(Error::NotRegular(kind(st.st_mode)));
    }
    Ok(std::fs::File::from(fd))
}

/// Removes the entry at `path` (see [`Dir::remove`]).
pub fn remove(root: &Root, path: &str) -> Result<()> {
    let (dir, name) = parent(root, path)?;
    dir.remove(&name)
}

/// Opens a directory inside the root.
pub fn open_dir(root: &Root, path: &str) -> Result<Dir> {
    let fd = open(
        root,
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Error::Io(ref io) if io.raw_os_error() == Some(libc::ENOTDIR) => {
            Error::NotRegular("not a directory")
        }
        e => e,
    })?;
    Ok(Dir { fd })
}

/// `mkdir -p` inside the root; each component is created in the directory
/// resolved (inside the root) just before.
pub fn create_dir_all(root: &Root, path: &str, mode: u32) -> Result<Dir> {
    let mut done = String::new();
    for comp in rel(path).split('/').filter(|c| !c.is_empty() && *c != ".") {
        let parent = open_dir(root, if done.is_empty() { "." } else { &done })?;
        match mkdirat(
            Some(parent.fd.as_raw_fd()),
            comp,
            Mode::from_bits_truncate(mode),
        ) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(io_err(e)),
        }
        if !done.is_empty() {
            done.push('/');
        }
        done.push_str(comp);
    }
    open_dir(root, if done.is_empty() { "." } else { &done })
}

/// Writes a small file at a host path (its directory is opened as given,
/// the file itself is replaced safely): for paths outside any root, such
/// as `status --textfile DIR`.
pub fn replace_at(path: &std::path::Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Io(io::ErrorKind::InvalidInput.into()))?;
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)?;
    let d = Dir { fd: own(fd) };
    let name = CString::new(OsStr::as_bytes(name))
        .map_err(|_| Error::Io(io::ErrorKind::InvalidInput.into()))?;
    d.replace(&name, data, mode)
}

/// Shows raw bytes on one log or terminal line: printable ASCII as is,
/// `\` and `"` escaped, everything else `\xNN`; at most `max` input bytes.
pub fn escape(b: &[u8], max: usize) -> String {
    let mut s = String::new();
    for (i, &c) in b.iter().enumerate() {
        if i == max {
            s.push_str("...");
            break;
        }
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

#[cfg(test)]
mod tests;
