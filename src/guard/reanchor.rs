//! Switch-root: after the initramfs hands over, the guard's root and cwd
//! still point into the old initramfs and would pin it. It moves into PID 1's
//! root through a /proc descriptor opened before the switch, then re-executes
//! the binary from the new root (same pid).

#![forbid(unsafe_code)]

use crate::log::Log;
use crate::paths;
use crate::sys::Open;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, stat};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

/// True when PID 1's root is no longer ours: a switch-root happened.
pub fn switched(procfd: &OwnedFd) -> bool {
    let Ok(theirs) = fstatat(Some(procfd.as_raw_fd()), "1/root", AtFlags::empty()) else {
        return false;
    };
    let Ok(ours) = stat("/") else { return false };
    (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino)
}

/// Moves root and cwd into PID 1's root and re-executes from there. Returns
/// only if no binary to re-execute was found (or exec failed); the guard
/// then goes on from memory, already re-rooted.
pub fn reanchor(procfd: &OwnedFd, log: &Log) {
    let fd = match crate::sys::open_at(procfd, "1/root", Open::PATH | Open::DIRECTORY) {
        Ok(fd) => fd,
        Err(e) => {
            log.warn(&format!(
                "switch-root seen but /proc/1/root cannot be opened: {e}"
            ));
            return;
        }
    };
    if let Err(e) = nix::unistd::fchdir(fd.as_raw_fd())
        .and_then(|_| nix::unistd::chroot("."))
        .and_then(|_| nix::unistd::chdir("/"))
    {
        log.warn(&format!(
            "switch-root seen but cannot move into the new root: {}",
            e.desc()
        ));
        return;
    }
    let Some(bin) = paths::BINARIES
        .iter()
        .map(|b| format!("/{b}"))
        .find(|b| std::path::Path::new(b).is_file())
    else {
        log.warn("re-anchored into the new root, but no oom-ext binary there (/usr/sbin, /usr/bin); running on from memory");
        return;
    };
    log.info(&format!(
        "switch-root seen: re-anchored into the new root, re-executing {bin}"
    ));
    // The new image sets up (page faults, buffer) before it blocks again:
    // do that as a normal task, not under the real-time CPU-time limit.
    let _ = crate::sys::set_scheduler(libc::SCHED_OTHER, 0);
    let argv = [c"oom-ext-guard", c"guard", c"--resume"];
    let Ok(path) = CString::new(bin.clone()) else {
        return;
    };
    let err = nix::unistd::execv(&path, &argv);
    log.warn(&format!(
        "cannot re-execute {bin}: {err:?}; running on from memory"
    ));
}
