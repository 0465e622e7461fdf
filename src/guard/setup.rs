//! The guard's process set-up: one guard (the lock), pid files, locked
//! memory and OOM shield, real-time priority, daemonizing for the
//! real-root unit, the configuration it runs with.

use crate::log::Log;
use crate::params::Params;
use crate::paths;
use crate::root::Root;
use crate::runtime::{Config, Mode};
use crate::{rootfs, sys};
use nix::sys::signal::{SigSet, Signal};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// Which mode and parameters this guard runs with ([`Config`]); a damaged
/// params file's skipped lines are logged.
pub(super) fn load_config(root: &Root, log: &Log) -> (Mode, Params) {
    let c = Config::load(root);
    for pr in &c.problems {
        log.warn(pr);
    }
    (
        c.mode(
            rootfs::read_small(root, paths::MODULE_STATUS).is_some(),
            true,
        ),
        c.params,
    )
}

/// `/run/oom-ext/guard.lock`: ours, or held by another guard (its pid, as
/// written in the lock file, if readable).
pub(super) enum Lock {
    Mine(std::fs::File),
    Held(Option<u32>),
}

pub(super) fn take_lock(root: &Root, resume: bool) -> std::io::Result<Lock> {
    rootfs::create_dir_all(root, paths::RUN_DIR, 0o755)?;
    // Inside the root, a regular file only (a FIFO or a link there is
    // refused, never waited on or followed).
    let file = rootfs::open_lock(root, paths::LOCKFILE, 0o644)?;
    // Not close-on-exec: the lock must stay held across the re-exec after
    // switch-root (same pid, same open file description).
    nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&file),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .map_err(sys::errno)?;
    match sys::try_lock_exclusive(&file) {
        Ok(true) => Ok(Lock::Mine(file)),
        Ok(false) => {
            // Who holds it, from the kernel (not the file, which a
            // starting guard may not have written yet).
            // A guard that took the lock and then daemonized has a new pid
            // that its child writes a moment later: wait for it (5 s at
            // most: on a loaded machine 1 s was seen to be too short).
            let holder =
                crate::pidtrust::lock_holder_within(root, std::time::Duration::from_secs(5));
            if resume && holder == Some(std::process::id()) {
                // Our pre-exec self holds it through the inherited descriptor.
                Ok(Lock::Mine(file))
            } else {
                Ok(Lock::Held(holder))
            }
        }
        Err(e) => Err(e),
    }
}

pub(super) fn write_pid(root: &Root, lock: &mut std::fs::File, pid: u32) -> std::io::Result<()> {
    // Overwrite, then cut: the file is never empty (readers take its
    // first line).
    let line = format!("{pid}\n");
    lock.seek(SeekFrom::Start(0))?;
    lock.write_all(line.as_bytes())?;
    lock.set_len(line.len() as u64)?;
    write_pidfile(root, pid)
}

/// `/run/oom-ext/guard.pid`, replaced inside the root (a link there is
/// replaced, not followed).
pub(super) fn write_pidfile(root: &Root, pid: u32) -> std::io::Result<()> {
    Ok(rootfs::replace(
        root,
        paths::PIDFILE,
        format!("{pid}\n").as_bytes(),
        0o644,
    )?)
}

/// Removes the pid file (the entry itself, inside the root).
pub(super) fn remove_pidfile(root: &Root) {
    let _ = rootfs::remove(root, paths::PIDFILE);
}

/// Locks memory and shields the guard from the OOM killer.
pub(super) fn harden(root: &Root, log: &Log) {
    // MCL_CURRENT without MCL_ONFAULT on purpose: the binary is static, so
    // "current" is our own code and data (0.4 MiB with musl, 1.3 with
    // glibc), and all of it, including the OOM paths never run before the
    // first OOM, must be in RAM when the machine thrashes; with MCL_ONFAULT
    // those pages would be read from disk exactly then. The heap and stack
    // stay small.
    // glibc gives a second thread (the writer) its own malloc arena: a
    // 64 MiB reservation that MCL_FUTURE would lock. One arena is plenty.
    // SAFETY: run() calls harden() before the writer thread starts: no
    // other thread exists yet.
    unsafe { sys::malloc_one_arena() };
    if let Err(e) = sys::lock_all_memory() {
        log.warn(&format!("mlockall failed: {e}; the guard may be paged out"));
    }
    if let Err(e) = crate::rootfs::write_existing(root, "proc/self/oom_score_adj", b"-1000\n") {
        log.warn(&format!("cannot set oom_score_adj=-1000: {e}"));
    }
}

/// Real-time priority for the loop (set after the setup, whose page faults
/// under emulation can take long): a runaway loop is stopped by
/// RLIMIT_RTTIME (SIGXCPU after 2 s of CPU without blocking, SIGKILL at 3 s)
/// and by the kernel's RT throttling.
pub(super) fn realtime(root: &Root) {
    if !root.is_system() {
        return; // tests against a fake root keep the normal scheduler
    }
    let _ = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_RTTIME,
        2_000_000,
        3_000_000,
    );
    if sys::set_scheduler(libc::SCHED_RR, 1).is_err() {
        let _ = sys::set_nice(-20);
    }
}

/// The signals the event loop reads from its signalfd.
pub(super) fn handled_signals() -> SigSet {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    mask
}

/// The daemonized child's promise to its waiting parent: the pipe's write
/// end.
pub(super) struct Ready(OwnedFd);

/// Forks; the parent waits until the child has written the pidfile
/// ([`finish_daemonize`]), then exits 0 (systemd Type=forking). The child
/// starts a new session.
///
/// # Safety
/// As [`sys::fork`]: the process must be single-threaded.
pub(super) unsafe fn daemonize() -> std::io::Result<Ready> {
    let (r, w) = nix::unistd::pipe().map_err(sys::errno)?;
    // SAFETY: the caller guarantees the process is single-threaded.
    match unsafe { sys::fork() }? {
        sys::Forked::Parent => {
            drop(w);
            let mut b = [0u8; 1];
            let ok = std::fs::File::from(r)
                .read(&mut b)
                .map(|n| n == 1)
                .unwrap_or(false);
            std::process::exit(if ok { 0 } else { 1 });
        }
        sys::Forked::Child => {
            drop(r);
            let _ = nix::unistd::setsid();
            Ok(Ready(w))
        }
    }
}

/// Tells the waiting parent that the pidfile is there; stdio to /dev/null.
pub(super) fn finish_daemonize(ready: Ready) {
    let mut f = std::fs::File::from(ready.0);
    let _ = f.write_all(b"1");
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for target in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), target);
        }
    }
}
