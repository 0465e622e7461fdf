//! The kill itself: a pidfd (so the signal reaches the process that was
//! chosen, never a later one with its pid), `SIGKILL` through it, then
//! `process_mrelease` so the victim's memory comes back without waiting
//! for it to run; or a whole cgroup through `cgroup.kill`.

#![forbid(unsafe_code)]

use crate::root::Root;
use crate::sys;
use std::os::fd::OwnedFd;

/// How a process kill went.
#[derive(Debug)]
pub struct Killed {
    /// Kept open: the guard watches it for the victim's exit.
    pub pidfd: OwnedFd,
    /// `process_mrelease` gave the memory back (false: ENOSYS before
    /// 5.15, or the victim was already past it).
    pub released: bool,
}

/// Kills `pid` if it is still the process that started at `start_time`
/// (`start_now` reads that start time again, after the pidfd pins the
/// process). `Err(ESRCH)`: gone or someone else.
pub fn kill_process(
    pid: u32,
    start_time: u64,
    start_now: impl Fn() -> Option<u64>,
) -> std::io::Result<Killed> {
    let pidfd = sys::pidfd_open(pid)?;
    // The pidfd names whoever has the pid now: make sure it is the victim.
    if start_now() != Some(start_time) {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    sys::pidfd_kill(&pidfd)?;
    let released = sys::process_mrelease(&pidfd).is_ok();
    Ok(Killed { pidfd, released })
}

/// Writes `1` to `cgroup.kill` of `group` (a cgroup v2 path such as
/// `/system.slice/leak.service`): the kernel kills every process in it
/// and below, also ones forked meanwhile (Linux 5.14+).
pub fn kill_group(root: &Root, group: &str) -> std::io::Result<()> {
    let rel = group.trim_start_matches('/');
    if rel
        .split('/')
        .any(|c| c == ".." || c == "." || c.is_empty())
    {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // Inside the root, an existing regular file (kernfs's are), not a link.
    let path = format!("sys/fs/cgroup/{rel}/cgroup.kill");
    Ok(crate::rootfs::write_existing(root, &path, b"1")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_a_child_through_its_pidfd() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = crate::policy::proctable::read_proc(&Root::system(), pid, 4)
            .unwrap()
            .start_time;
        let k = kill_process(pid, start, || Some(start)).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        drop(k);
    }

    #[test]
    fn a_process_that_is_not_the_chosen_one_is_spared() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let e = kill_process(child.id(), 1, || Some(2)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
        assert!(child.try_wait().unwrap().is_none(), "spared child died");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn cgroup_kill_writes_one_under_the_root() {
        let d = std::env::temp_dir().join(format!("oom-ext-kill-{}", std::process::id()));
        let g = d.join("sys/fs/cgroup/system.slice/leak.service");
        std::fs::create_dir_all(&g).unwrap();
        std::fs::write(g.join("cgroup.kill"), "").unwrap();
        let root = Root::new(&d);
        kill_group(&root, "/system.slice/leak.service").unwrap();
        let written = std::fs::read_to_string(g.join("cgroup.kill")).unwrap();
        assert!(kill_group(&root, "/system.slice/../x").is_err());
        assert!(kill_group(&root, "/system.slice/none.service").is_err());
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(written, "1");
    }
}
