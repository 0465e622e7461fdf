//! Whether a pid read from a file is the guard: believed only when the
//! kernel shows the guard's lock file flocked (/proc/locks, by device and
//! inode), that pid has the lock file open (/proc/PID/fd; when those cannot
//! be read, as for a user, the pid must be the lock's holder in /proc/locks)
//! and its /proc/PID/exe is an `oom-ext`. (/proc/locks names the process
//! that took the lock, which is the parent when the guard daemonized after
//! taking it, hence the fd check.) Liveness is a fact of this machine, so
//! /proc is the real one even under `--root`.

use crate::paths;
use crate::root::Root;
use crate::rootfs;

/// `(major, minor, inode)` of a file.
pub type FileId = (u64, u64, u64);

/// Pids holding a FLOCK on `id` in /proc/locks text:
/// `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF` (hex device numbers).
pub fn flock_holders(locks: &[u8], id: FileId) -> Vec<u32> {
    let mut out = Vec::new();
    for line in locks.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let w: Vec<&str> = line.split_ascii_whitespace().collect();
        // Blocked waiters are shown as "1: -> FLOCK ...": skip them.
        if w.len() < 6 || w[1] != "FLOCK" {
            continue;
        }
        let (Ok(pid), Some(dev)) = (w[4].parse::<u32>(), parse_dev(w[5])) else {
            continue;
        };
        if dev == id && !out.contains(&pid) {
            out.push(pid);
        }
    }
    out
}

fn parse_dev(s: &str) -> Option<FileId> {
    let mut it = s.splitn(3, ':');
    let maj = u64::from_str_radix(it.next()?, 16).ok()?;
    let min = u64::from_str_radix(it.next()?, 16).ok()?;
    let ino = it.next()?.parse().ok()?;
    Some((maj, min, ino))
}

/// The lock file's id and raw `st_dev`, if it is a regular file inside
/// the root.
fn lock_id(root: &Root) -> Option<(FileId, u64)> {
    let (dir, name) = rootfs::parent(root, paths::LOCKFILE).ok()?;
    let st = dir.lstat(&name).ok()?;
    if !rootfs::is_regular(&st) {
        return None;
    }
    let dev = st.st_dev;
    Some((
        (
            u64::from(libc::major(dev)),
            u64::from(libc::minor(dev)),
            st.st_ino,
        ),
        dev,
    ))
}

/// Whether /proc/PID/exe is an `oom-ext` (also after an upgrade replaced it).
fn exe_is_ours(pid: u32) -> bool {
    match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(t) => {
            let t = t.as_os_str().to_string_lossy();
            let t = t.strip_suffix(" (deleted)").unwrap_or(&t);
            t.rsplit('/').next() == Some("oom-ext")
        }
        // Another process's exe and fds need ptrace access, which the kernel
        // (cap_ptrace_access_check) refuses to a caller whose capabilities
        // are not a superset of the target's: the guard unit's bounded set
        // against a guard resumed from the initramfs. Its comm, which exec
        // sets from the executable's name, is readable by anyone.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => comm_is_ours(pid),
        Err(_) => false,
    }
}

fn comm_is_ours(pid: u32) -> bool {
    rootfs::read_small(&Root::system(), &format!("proc/{pid}/comm"))
        .is_some_and(|c| c.strip_suffix(b"\n").unwrap_or(&c) == b"oom-ext")
}

/// Whether `pid` has the file (dev, ino) open; `None` when its fds cannot
/// be read (the directory opens, but listing it or following an entry is
/// refused without ptrace access).
fn has_open(pid: u32, dev: u64, ino: u64) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
        let entry = entry.ok()?;
        match std::fs::metadata(entry.path()) {
            Ok(m) if m.dev() == dev && m.ino() == ino => return Some(true),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return None,
            // Another file, or one closed since the listing.
            _ => {}
        }
    }
    Some(false)
}

/// Whether `pid` holds the flocked lock file (dev, ino): it has the file
/// open, or, where its fds cannot be read (no ptrace access, see
/// [`exe_is_ours`]), it is a taker in /proc/locks or the lock is held and
/// the lock file, which only root writes, names it.
fn holds_lock(pid: u32, dev: u64, ino: u64, holders: &[u32]) -> bool {
    has_open(pid, dev, ino).unwrap_or(!holders.is_empty())
}

/// The guard holding the lock under `root`: the pid in the lock file's
/// first line or a taker in /proc/locks, whichever has the lock file open
/// and runs an oom-ext. For a lock just taken (the file not yet written)
/// the taker is the guard.
pub fn lock_holder(root: &Root) -> Option<u32> {
    let (id, dev) = lock_id(root)?;
    let locks = rootfs::read_small(&Root::system(), "proc/locks")?;
    let holders = flock_holders(&locks, id);
    let in_file = rootfs::read_small(root, paths::LOCKFILE).and_then(|b| {
        let first = b.split(|&c| c == b'\n').next()?;
        std::str::from_utf8(first).ok()?.trim().parse::<u32>().ok()
    });
    in_file
        .into_iter()
        .chain(holders.iter().copied())
        .find(|&pid| holds_lock(pid, dev, id.2, &holders) && exe_is_ours(pid))
}

/// [`lock_holder`], asked again every 20 ms for at most `wait`.
pub fn lock_holder_within(root: &Root, wait: std::time::Duration) -> Option<u32> {
    let start = std::time::Instant::now();
    loop {
        if let Some(p) = lock_holder(root) {
            return Some(p);
        }
        if start.elapsed() >= wait {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The pid of the guard that holds the lock under `root`, if any; `claimed`
/// (e.g. from the pidfile) is believed only if it is that guard.
pub fn verified_guard(root: &Root, claimed: Option<u32>) -> Option<u32> {
    let (id, dev) = lock_id(root)?;
    let locks = rootfs::read_small(&Root::system(), "proc/locks")?;
    let holders = flock_holders(&locks, id);
    if holders.is_empty() {
        return None;
    }
    let pid = claimed.or_else(|| holders.first().copied())?;
    (holds_lock(pid, dev, id.2, &holders) && exe_is_ours(pid)).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flock_holders_by_device_and_inode() {
        let locks = b"1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF\n\
2: POSIX  ADVISORY  WRITE 99 08:01:5678 0 EOF\n\
2: -> FLOCK  ADVISORY  WRITE 77 08:01:5678 0 EOF\n\
3: FLOCK  ADVISORY  WRITE 55 fd:1a:5678 0 EOF\n\
4: FLOCK  ADVISORY  WRITE x 08:01:5678 0 EOF\n\xff\n";
        assert_eq!(flock_holders(locks, (8, 1, 5678)), vec![1234]);
        assert_eq!(flock_holders(locks, (0xfd, 0x1a, 5678)), vec![55]);
        assert!(flock_holders(locks, (8, 1, 1)).is_empty());
    }

    #[test]
    fn a_live_pid_that_holds_no_lock_is_not_the_guard() {
        let d = std::env::temp_dir().join(format!("oom-ext-pidtrust-{}", std::process::id()));
        std::fs::create_dir_all(d.join("run/oom-ext")).unwrap();
        std::fs::write(d.join("run/oom-ext/guard.lock"), "1\n").unwrap();
        let root = Root::new(&d);
        assert_eq!(verified_guard(&root, Some(std::process::id())), None);
        assert_eq!(verified_guard(&root, Some(1)), None);
        // Held by us (a test binary, not an oom-ext): still not the guard.
        let f = std::fs::File::open(d.join("run/oom-ext/guard.lock")).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(fd, libc::LOCK_EX) };
        assert_eq!(r, 0);
        let locks = rootfs::read_small(&Root::system(), "proc/locks").unwrap();
        let (id, _) = lock_id(&root).unwrap();
        assert!(flock_holders(&locks, id).contains(&std::process::id()));
        assert_eq!(
            verified_guard(&root, Some(std::process::id())),
            None,
            "exe is not oom-ext"
        );
        let (id, dev) = lock_id(&root).unwrap();
        assert_eq!(has_open(std::process::id(), dev, id.2), Some(true));
        // Not ino + 1: other tests of this process may hold that file open.
        assert_eq!(has_open(std::process::id(), dev, u64::MAX), Some(false));
        drop(f);
        std::fs::remove_dir_all(d).unwrap();
    }
}
