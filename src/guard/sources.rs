//! The guard's event sources: the descriptors the loop polls (signals,
//! timer, module status, PSI trigger, kernel log, victims' pidfds,
//! mountinfo) and the readings that become [`Event`]s and [`Facts`]. No
//! decisions here: what an event means is the machine's.

#![forbid(unsafe_code)]

use super::kernel_text::{self, Scope};
use super::machine::{Event, Facts, MemcgKill};
use super::unexplained::Unexplained;
use crate::log::Log;
use crate::module_status;
use crate::params::Params;
use crate::paths;
use crate::root::Root;
use crate::rootfs;
use crate::sys;
use crate::sys::now_ms;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::SigSet;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;

fn fs_is(fd: &impl AsFd, fs: sys::Fs) -> bool {
    sys::fs_of(fd) == fs
}

/// The absolute CLOCK_BOOTTIME expiry of a deadline in ms. A zero
/// `it_value` disarms a timerfd instead of firing it, so a deadline of 0
/// is 1 ns: like any past deadline, it fires at once.
fn expiry(ms: u64) -> TimeSpec {
    if ms == 0 {
        return TimeSpec::new(0, 1);
    }
    TimeSpec::new((ms / 1000) as i64, ((ms % 1000) * 1_000_000) as i64)
}

/// Arms `timer` at the deadline (ms of CLOCK_BOOTTIME), or disarms it.
fn set_timer(timer: &TimerFd, at: Option<u64>) -> nix::Result<()> {
    match at {
        None => timer.unset(),
        Some(ms) => timer.set(
            Expiration::OneShot(expiry(ms)),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME,
        ),
    }
}

/// Which source woke the loop.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Src {
    Signal,
    Timer,
    Status,
    Psi,
    Mountinfo,
    Kmsg,
    Victim(u32),
}

/// What a ready source gave: events for the machine, or something for the
/// loop itself.
pub(super) enum Input {
    Event(Event),
    /// TERM/INT (stop) or HUP (reload).
    Signal(u32),
    /// Mount activity, or a re-check after it (the attempt).
    MountCheck(u32),
    /// The timer fired at a machine deadline.
    Deadline,
}

pub(super) struct Sources {
    root: Root,
    sigfd: SignalFd,
    timer: TimerFd,
    timer_at: Option<u64>,
    status_fd: Option<std::fs::File>,
    status_pollable: bool,
    psi: Option<OwnedFd>,
    psi_error: Option<String>,
    psi_wanted: bool,
    /// The harm model samples PSI `full` (harm=1).
    harm: bool,
    mountinfo: Option<OwnedFd>,
    pub(super) procfd: Option<OwnedFd>,
    kmsg: Option<std::fs::File>,
    vmstat_kills: Option<u64>,
    /// Rises of vmstat's `oom_kill` no kill line has explained yet.
    unexplained: Unexplained,
    /// Kill lines at a memory cgroup's limit read so far (vmstat's
    /// `oom_kill` counts them too).
    memcg_kills: u64,
    /// The OOM killer's last summary line, until its victim's kill line.
    context: Option<kernel_text::Context>,
    /// /proc/vmstat as read by this wake-up's [`Sources::check_vmstat`]:
    /// the next [`Sources::facts`] uses it instead of reading it again.
    vmstat_now: Option<String>,
    /// Page size in kB, for vmstat's page counts.
    page_kb: i64,
    /// After mount activity without a visible switch yet (PID 1 chroots a
    /// moment after the last mount event), a few re-checks: (when, attempt).
    mount_recheck: Option<(u64, u32)>,
    /// pidfds of OOM victims not yet exited (the machine's WatchExit).
    victims: Vec<(u32, OwnedFd)>,
}

/// Re-checks after mount activity: 200 ms, then doubling, 5 in all.
const MOUNT_RECHECK_MS: u64 = 200;
const MOUNT_RECHECKS: u32 = 5;

impl Sources {
    pub(super) fn open(
        root: Root,
        kernel_mode: bool,
        params: &Params,
        mask: &SigSet,
        log: &Log,
    ) -> std::io::Result<Sources> {
        let sigfd = SignalFd::with_flags(mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(sys::errno)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_BOOTTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(sys::errno)?;
        let mut s = Sources {
            root,
            sigfd,
            timer,
            timer_at: None,
            status_fd: None,
            status_pollable: false,
            psi: None,
            psi_error: None,
            psi_wanted: false,
            harm: false,
            mountinfo: None,
            procfd: None,
            kmsg: None,
            vmstat_kills: None,
            unexplained: Unexplained::default(),
            memcg_kills: 0,
            context: None,
            vmstat_now: None,
            page_kb: nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .map_or(4, |b| b / 1024) as i64,
            mount_recheck: None,
            victims: Vec::new(),
        };
        if kernel_mode {
            s.open_status(log);
        }
        s.open_psi(params);
        if let Some(e) = &s.psi_error {
            log.warn(&format!("stall protection unavailable: {e}"));
        }
        if s.root.is_system() {
            s.mountinfo = sys::open(
                std::path::Path::new("/proc/self/mountinfo"),
                sys::Open::RDONLY,
            )
            .ok();
            s.procfd = sys::open(
                std::path::Path::new("/proc"),
                sys::Open::PATH | sys::Open::DIRECTORY,
            )
            .ok();
        }
        s.open_kmsg();
        s.vmstat_kills = s
            .read_vmstat()
            .and_then(|t| kernel_text::vmstat_oom_kill(&t));
        Ok(s)
    }

    /// on | off | unavailable, for the state file and the start line.
    pub(super) fn psi_word(&self) -> &'static str {
        match (&self.psi, self.psi_wanted) {
            (Some(_), _) => "on",
            (None, false) => "off",
            (None, true) => "unavailable",
        }
    }

    /// The `oom_kill` counter of /proc/vmstat as last read, less the kills
    /// at a cgroup's limit seen since the guard started: the system OOM
    /// kills (the flag's `oom_calls` in fallback mode).
    pub(super) fn oom_kills(&self) -> u64 {
        self.vmstat_kills
            .unwrap_or(0)
            .saturating_sub(self.memcg_kills)
    }

    /// Opens `path` inside the root ([`rootfs::open`]).
    fn open_in_root(&self, path: &str, flags: OFlag) -> Result<OwnedFd, rootfs::Error> {
        rootfs::open(&self.root, path, flags, nix::sys::stat::Mode::empty())
    }

    fn open_status(&mut self, log: &Log) {
        // Never blocking on a FIFO a fake root has there; sysfs's is a
        // regular file.
        let opened = self
            .open_in_root(paths::MODULE_STATUS, OFlag::O_RDONLY | OFlag::O_NONBLOCK)
            .and_then(
                |fd| match nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)) {
                    Ok(st) if rootfs::is_regular(&st) => Ok(fd),
                    Ok(st) => Err(rootfs::Error::NotRegular(rootfs::kind(st.st_mode))),
                    Err(e) => Err(rootfs::Error::Io(sys::errno(e))),
                },
            );
        match opened {
            Ok(fd) => {
                let f = std::fs::File::from(fd);
                self.status_pollable = fs_is(&f, sys::Fs::Sys);
                self.status_fd = Some(f);
            }
            Err(e) => log.warn(&format!(
                "kernel mode but cannot open /{}: {e}",
                paths::MODULE_STATUS
            )),
        }
    }

    /// Opens (again) the PSI trigger for these parameters.
    pub(super) fn open_psi(&mut self, params: &Params) {
        self.psi = None;
        self.psi_error = None;
        self.psi_wanted = params.psi;
        self.harm = params.psi && params.harm;
        if !params.psi {
            return;
        }
        let path = paths::PSI_MEMORY;
        let fd = match self.open_in_root(path, OFlag::O_RDWR | OFlag::O_NONBLOCK) {
            Ok(fd) => fd,
            Err(e) => {
                self.psi_error = Some(format!(
                    "cannot open /{path}: {e} (kernel without PSI, or psi=0 on the command line)"
                ));
                return;
            }
        };
        if !fs_is(&fd, sys::Fs::Proc) {
            self.psi_error = Some(format!("/{path} is not in procfs"));
            return;
        }
        let trig = params.psi_trigger();
        // The kernel overwrites the last byte written with NUL: send the
        // terminator ourselves or the window loses its last digit.
        let mut bytes = trig.clone().into_bytes();
        bytes.push(0);
        if let Err(e) = nix::unistd::write(&fd, &bytes) {
            self.psi_error = Some(format!("PSI trigger {trig:?} refused: {}", e.desc()));
            return;
        }
        self.psi = Some(fd);
    }

    fn open_kmsg(&mut self) {
        let Ok(fd) = self.open_in_root(paths::KMSG, OFlag::O_RDONLY | OFlag::O_NONBLOCK) else {
            return;
        };
        let f = std::fs::File::from(fd);
        // /dev/kmsg is a character device; a FIFO stands in for it in tests
        // against a fake root. A regular file would make poll spin.
        let ft = match f.metadata() {
            Ok(m) => m.file_type(),
            Err(_) => return,
        };
        if !ft.is_char_device() && !ft.is_fifo() {
            return;
        }
        let mut f = f;
        let _ = f.seek(SeekFrom::End(0)); // only messages from now on
        self.kmsg = Some(f);
    }

    fn read_vmstat(&self) -> Option<String> {
        crate::rootfs::read_small(&self.root, paths::VMSTAT).and_then(|b| String::from_utf8(b).ok())
    }

    /// The measurements handed to the machine with an event.
    pub(super) fn facts(&mut self) -> Facts {
        let meminfo = crate::rootfs::read_small(&self.root, paths::MEMINFO)
            .and_then(|b| String::from_utf8(b).ok());
        let page_kb = self.page_kb;
        let vmstat = self.vmstat_now.take().or_else(|| self.read_vmstat());
        Facts {
            now_ms: now_ms(),
            mem_available_kb: meminfo.as_deref().and_then(kernel_text::mem_available_kb),
            mem_total_kb: meminfo.as_deref().and_then(kernel_text::mem_total_kb),
            net_freed_kb: vmstat
                .as_deref()
                .and_then(kernel_text::vmstat_net_freed_pages)
                .map(|p| p.wrapping_mul(page_kb)),
            swap_out_kb: vmstat
                .as_deref()
                .and_then(kernel_text::vmstat_pswpout)
                .map(|p| p.wrapping_mul(page_kb as u64)),
            psi_full_us: self
                .harm
                .then(|| crate::rootfs::read_small(&self.root, paths::PSI_MEMORY))
                .flatten()
                .and_then(|b| String::from_utf8(b).ok())
                .as_deref()
                .and_then(kernel_text::psi_full_total_us),
            swap_free_kb: meminfo.as_deref().and_then(kernel_text::swap_free_kb),
        }
    }

    /// A wake-up's unused vmstat reading must not look fresh to the next.
    pub(super) fn forget_readings(&mut self) {
        self.vmstat_now = None;
    }

    /// The module's status, read again from the start.
    pub(super) fn read_status(&mut self) -> Option<module_status::ModuleStatus> {
        let f = self.status_fd.as_mut()?;
        let mut s = String::new();
        f.seek(SeekFrom::Start(0)).ok()?;
        f.take(64 * 1024).read_to_string(&mut s).ok()?;
        Some(module_status::parse(&s))
    }

    /// The timer at the earliest of the machine's deadline, a mount
    /// re-check and the end of an unexplained rise's wait.
    pub(super) fn arm_timer(&mut self, deadline: Option<u64>) {
        let want = [
            deadline,
            self.mount_recheck.map(|(t, _)| t),
            self.unexplained.deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        if want == self.timer_at {
            return;
        }
        // Remembered only when set: a failed set is tried again next time.
        if set_timer(&self.timer, want).is_ok() {
            self.timer_at = want;
        }
    }

    /// Blocks until a source is ready; the ready ones and their revents.
    pub(super) fn wait(&mut self) -> Result<Vec<(Src, PollFlags)>, nix::Error> {
        let pri = PollFlags::POLLPRI | PollFlags::POLLERR;
        let mut want = vec![
            (Src::Signal, self.sigfd.as_fd(), PollFlags::POLLIN),
            (Src::Timer, self.timer.as_fd(), PollFlags::POLLIN),
        ];
        if let (Some(f), true) = (&self.status_fd, self.status_pollable) {
            want.push((Src::Status, f.as_fd(), pri));
        }
        if let Some(f) = &self.psi {
            want.push((Src::Psi, f.as_fd(), PollFlags::POLLPRI));
        }
        if let Some(f) = &self.mountinfo {
            want.push((Src::Mountinfo, f.as_fd(), pri));
        }
        if let Some(f) = &self.kmsg {
            want.push((Src::Kmsg, f.as_fd(), PollFlags::POLLIN));
        }
        for (pid, fd) in &self.victims {
            want.push((Src::Victim(*pid), fd.as_fd(), PollFlags::POLLIN));
        }
        let mut fds: Vec<PollFd> = want
            .iter()
            .map(|&(_, fd, ev)| PollFd::new(fd, ev))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
        Ok(want
            .iter()
            .map(|&(src, _, _)| src)
            .zip(fds.iter())
            .filter_map(|(s, f)| f.revents().filter(|r| !r.is_empty()).map(|r| (s, r)))
            .collect())
    }

    /// Reads a ready source.
    pub(super) fn read(&mut self, src: Src, rev: PollFlags, log: &Log) -> Vec<Input> {
        let mut out = Vec::new();
        match src {
            Src::Signal => {
                while let Ok(Some(si)) = self.sigfd.read_signal() {
                    out.push(Input::Signal(si.ssi_signo));
                }
            }
            Src::Timer => {
                let _ = self.timer.wait(); // consumes the expiry (non-blocking)
                self.timer_at = None;
                match self.mount_recheck {
                    Some((at, attempt)) if now_ms() >= at => {
                        self.mount_recheck = None;
                        out.push(Input::MountCheck(attempt + 1));
                    }
                    _ => {}
                }
                if self.unexplained.deadline().is_some_and(|d| now_ms() >= d) {
                    // The kill line may be ready with the timer: read it first.
                    self.read_kmsg(&mut out);
                    self.check_vmstat(&mut out);
                }
                out.push(Input::Deadline);
            }
            Src::Status => {
                if let Some(s) = self.read_status() {
                    out.push(Input::Event(Event::Module(s)));
                }
            }
            Src::Psi => {
                if rev.contains(PollFlags::POLLERR) {
                    log.warn("PSI trigger went away; stall protection off");
                    self.psi = None;
                } else {
                    out.push(Input::Event(Event::Psi));
                    self.check_vmstat(&mut out);
                }
            }
            Src::Mountinfo => out.push(Input::MountCheck(0)),
            Src::Victim(pid) => {
                self.unwatch(pid);
                out.push(Input::Event(Event::VictimExited(pid)));
            }
            Src::Kmsg => {
                self.read_kmsg(&mut out);
                self.check_vmstat(&mut out);
                // Only a FIFO hangs up (its writer went away); /dev/kmsg
                // signals POLLERR on overrun, which the next read handles.
                if rev.contains(PollFlags::POLLHUP) {
                    self.kmsg = None;
                }
            }
        }
        out
    }

    /// A rise of vmstat's `oom_kill` that no kill line in the kernel log
    /// explains (system or cgroup: the counter counts both), once it has
    /// waited for its line ([`Unexplained`]): a system OOM kill without a
    /// victim known.
    fn check_vmstat(&mut self, out: &mut Vec<Input>) {
        let text = self.read_vmstat();
        let now = text.as_deref().and_then(kernel_text::vmstat_oom_kill);
        let lines = out
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Input::Event(Event::OomKill(Some(_)) | Event::MemcgKill(_))
                )
            })
            .count() as u64;
        let rise = match (self.vmstat_kills, now) {
            (Some(old), Some(new)) => new.saturating_sub(old),
            _ => 0,
        };
        if self
            .unexplained
            .reading(rise, lines, now_ms(), self.kmsg.is_some())
            > 0
        {
            out.push(Input::Event(Event::OomKill(None)));
        }
        if now.is_some() {
            self.vmstat_kills = now;
        }
        self.vmstat_now = text;
    }

    fn read_kmsg(&mut self, out: &mut Vec<Input>) {
        let Some(f) = self.kmsg.as_mut() else { return };
        let mut buf = [0u8; 8192];
        // One read is one record; stop at EAGAIN. Bounded so a flood of
        // messages cannot keep the guard from its other sources.
        for _ in 0..256 {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    // A kmsg record's continuation lines never match; a FIFO
                    // read may hold several lines.
                    for line in String::from_utf8_lossy(&buf[..n]).lines() {
                        let root = &self.root;
                        kill_line(&mut self.context, &mut self.memcg_kills, line, out, |pid| {
                            read_cgroup(root, pid)
                        });
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue, // overrun: skip ahead
                Err(_) => break,
            }
        }
    }

    /// Switch-root seen and handled (or failed for good): no more mount checks.
    pub(super) fn stop_mount_checks(&mut self) {
        self.mountinfo = None;
        self.mount_recheck = None;
    }

    /// No switch visible yet after mount activity: look again later.
    pub(super) fn recheck_mounts(&mut self, attempt: u32) {
        if attempt < MOUNT_RECHECKS {
            self.mount_recheck = Some((now_ms() + (MOUNT_RECHECK_MS << attempt), attempt));
        }
    }

    /// Starts watching `pid` for its exit; false when it is gone already or
    /// cannot be watched (then nobody waits for it).
    pub(super) fn watch_exit(&mut self, pid: u32) -> bool {
        if !self.root.is_system() {
            return false; // a fake root's pids are not this machine's
        }
        self.victims.retain(|(p, _)| *p != pid);
        // ESRCH: exited already; ENOSYS: kernel before 5.3.
        let Ok(fd) = sys::pidfd_open(pid) else {
            return false;
        };
        self.victims.push((pid, fd));
        true
    }

    pub(super) fn unwatch(&mut self, pid: u32) {
        self.victims.retain(|(p, _)| *p != pid);
    }
}

/// A victim's cgroup v2 path from `/proc/PID/cgroup`.
fn read_cgroup(root: &crate::root::Root, pid: u32) -> Option<String> {
    crate::rootfs::read_small(root, &format!("proc/{pid}/cgroup"))
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| crate::policy::proctable::parse_cgroup(&t))
}

/// A kill line (or the summary line before it) into its event; counts the
/// kills at a cgroup's limit. The victim's cgroup (for on_hang): `cgroup_of`
/// it while it is still there (the v2 hierarchy, whatever controllers are
/// on), else the summary's `task_memcg`.
fn kill_line(
    context: &mut Option<kernel_text::Context>,
    memcg_kills: &mut u64,
    line: &str,
    out: &mut Vec<Input>,
    cgroup_of: impl Fn(u32) -> Option<String>,
) {
    if let Some(c) = kernel_text::parse_context(line) {
        *context = Some(c);
        return;
    }
    let Some((scope, mut victim)) = kernel_text::parse_kill(line) else {
        return;
    };
    // The summary names the cgroup, if it was about this victim.
    let context = context.take().filter(|c| c.pid == victim.pid);
    victim.cgroup = cgroup_of(victim.pid).or_else(|| context.as_ref()?.task_memcg.clone());
    out.push(Input::Event(match scope {
        Scope::System => Event::OomKill(Some(victim)),
        Scope::Memcg => {
            *memcg_kills += 1;
            Event::MemcgKill(MemcgKill {
                victim,
                memcg: context.filter(|c| c.memcg).and_then(|c| c.oom_memcg),
            })
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fires_within(timer: &TimerFd, ms: u16) -> bool {
        let mut fds = [PollFd::new(timer.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(ms)).unwrap() == 1
    }

    #[test]
    fn a_zero_or_past_deadline_fires_at_once_and_none_disarms() {
        let timer = TimerFd::new(ClockId::CLOCK_BOOTTIME, TimerFlags::TFD_NONBLOCK).unwrap();
        assert_eq!(expiry(0), TimeSpec::new(0, 1));
        assert_eq!(expiry(1_234), TimeSpec::new(1, 234_000_000));
        for at in [0, 1, now_ms().saturating_sub(1)] {
            set_timer(&timer, Some(at)).unwrap();
            assert!(fires_within(&timer, 2000), "deadline {at} did not fire");
            timer.wait().unwrap();
        }
        set_timer(&timer, Some(now_ms() + 60_000)).unwrap();
        assert!(!fires_within(&timer, 50), "a deadline a minute away fired");
        set_timer(&timer, Some(0)).unwrap();
        set_timer(&timer, None).unwrap();
        assert!(!fires_within(&timer, 50), "a disarmed timer fired");
    }
}
