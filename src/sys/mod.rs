//! The syscall layer: the few system calls the binary makes below std, each
//! once, with `io::Error` for failures and `OwnedFd` for new descriptors.
//! Built on rustix's safe wrappers where they exist; the rest (fork,
//! sched_setscheduler, glibc's mallopt, process_mrelease) are the only
//! `unsafe` left, each with its contract.

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::process::{Pid, PidfdFlags};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

pub use rustix::fs::OFlags as Open;

/// A nix error as an `io::Error` (same errno).
pub fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// open(2), close-on-exec; files it creates get mode 0644.
pub fn open(path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        flags | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?)
}

/// openat(2) relative to a directory descriptor, close-on-exec.
pub fn open_at(dir: impl AsFd, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// flock(LOCK_EX|LOCK_NB): `Ok(false)` when another holder has it.
pub fn try_lock_exclusive(fd: impl AsFd) -> io::Result<bool> {
    match rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The file system of a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    Proc,
    Sys,
    Other,
}

/// `statfs.f_type` of the sysfs (include/uapi/linux/magic.h).
const SYSFS_MAGIC: u64 = 0x6265_6572;

/// fstatfs(2): which file system holds `fd` (`Other` when it cannot tell).
pub fn fs_of(fd: impl AsFd) -> Fs {
    match rustix::fs::fstatfs(fd) {
        Ok(s) if s.f_type as u64 == rustix::fs::PROC_SUPER_MAGIC as u64 => Fs::Proc,
        Ok(s) if s.f_type as u64 == SYSFS_MAGIC => Fs::Sys,
        _ => Fs::Other,
    }
}

/// pidfd_open(2): a descriptor that polls readable when `pid` exits.
/// Fails with ESRCH when it has exited already, ENOSYS before Linux 5.3.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}

/// pidfd_send_signal(2) of SIGKILL: the process the pidfd names, never a
/// later one with its pid.
pub fn pidfd_kill(pidfd: impl AsFd) -> io::Result<()> {
    Ok(rustix::process::pidfd_send_signal(
        pidfd,
        rustix::process::Signal::KILL,
    )?)
}

/// process_mrelease(2) (Linux 5.15+): frees a killed process's memory now,
/// without waiting for it to run. rustix has no wrapper.
pub fn process_mrelease(pidfd: impl AsFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: process_mrelease(pidfd, flags) takes two integers; the
    // descriptor is borrowed and open for the call.
    let r = unsafe { libc::syscall(libc::SYS_process_mrelease, pidfd.as_fd().as_raw_fd(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// CLOCK_BOOTTIME in ms (counts suspend, like the kernel's timers).
pub fn now_ms() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    t.tv_sec as u64 * 1000 + t.tv_nsec as u64 / 1_000_000
}

/// mlockall(2) of current and future mappings.
pub fn lock_all_memory() -> io::Result<()> {
    use rustix::mm::MlockAllFlags;
    Ok(rustix::mm::mlockall(
        MlockAllFlags::CURRENT | MlockAllFlags::FUTURE,
    )?)
}

/// setpriority(2) of this process (nice value).
pub fn set_nice(nice: i32) -> io::Result<()> {
    Ok(rustix::process::setpriority_process(None, nice)?)
}

/// sched_setscheduler(2) on this thread as a raw syscall: musl's libc
/// wrapper always fails with ENOSYS (rustix has no wrapper).
pub fn set_scheduler(policy: libc::c_int, priority: libc::c_int) -> io::Result<()> {
    // The kernel's struct sched_param is one int (musl's libc struct is
    // larger, so it is not used here).
    let param: libc::c_int = priority;
    // SAFETY: the syscall reads one int through a pointer to a live local.
    let r = unsafe { libc::syscall(libc::SYS_sched_setscheduler, 0, policy, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// glibc: one malloc arena for every thread (a second thread's arena is a
/// 64 MiB reservation that `MCL_FUTURE` would lock). Nothing on musl.
///
/// # Safety
/// No other thread may run yet (mallopt is not thread-safe).
pub unsafe fn malloc_one_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a malloc tunable; the caller guarantees
    // that no other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Which side of a [`fork`] this is.
pub enum Forked {
    Parent,
    Child,
}

/// fork(2).
///
/// # Safety
/// The process must be single-threaded: the child gets only the calling
/// thread, and any lock another thread held (the allocator's included)
/// would stay locked in the child forever.
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller guarantees the process is single-threaded.
    match unsafe { nix::unistd::fork() }.map_err(errno)? {
        nix::unistd::ForkResult::Parent { .. } => Ok(Forked::Parent),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}
