//! `oom-ext guard`: the helper that lives on from the initramfs into the real
//! root. One poll(2) loop over event sources; no periodic wake-up: the timer
//! is armed only while a deadline (stall end, OOM end, re-arm, gracetime) is
//! pending.

pub mod buffer;
pub mod harm;
pub mod machine;
pub mod oomkill;
pub mod reanchor;
pub mod writer;

use crate::flag::NewFlag;
use crate::init::{write_atomic, Mode};
use crate::log::Log;
use crate::params::Params;
use crate::paths;
use crate::root::Root;
use crate::{cmdline, status};
use buffer::Buffer;
use machine::{Action, Event, Facts, Machine};
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode as FMode;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::time::Duration;
use writer::{Files, Job, Writer};

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Re-executed after switch-root: the lock may still be held by us.
    pub resume: bool,
    /// For the real-root unit (Type=forking, PIDFile=): take over a running
    /// guard, or daemonize.
    pub adopt: bool,
}

fn errno(e: nix::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// CLOCK_BOOTTIME in ms (counts suspend, like the kernel's timers).
pub fn now_ms() -> u64 {
    let t =
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).unwrap_or(TimeSpec::new(0, 0));
    t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000
}

fn open_raw(path: &std::path::Path, flags: OFlag) -> std::io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        flags | OFlag::O_CLOEXEC,
        FMode::from_bits_truncate(0o644),
    )
    .map_err(errno)?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fs_is(fd: &impl AsFd, magic: nix::sys::statfs::FsType) -> bool {
    nix::sys::statfs::fstatfs(fd)
        .map(|s| s.filesystem_type() == magic)
        .unwrap_or(false)
}

/// Which mode and parameters this guard runs with: `/run/oom-ext/{mode,params}`
/// written by `init`, else its own reading of the command line.
pub fn load_config(root: &Root, log: &Log) -> (Mode, Params) {
    let params = match std::fs::read_to_string(root.join(paths::PARAMS)) {
        Ok(text) => {
            let (p, problems) = Params::from_file(&text);
            for pr in problems {
                log.warn(&format!("{}: {pr}", paths::PARAMS));
            }
            p
        }
        Err(_) => {
            cmdline::parse(crate::rootfs::read_small(root, paths::CMDLINE).unwrap_or_default()).0
        }
    };
    let mode = std::fs::read_to_string(root.join(paths::MODE))
        .ok()
        .and_then(|m| Mode::parse(&m));
    let mode = match mode {
        Some(m) => m,
        None if !params.enabled => Mode::Off,
        None if root.join(paths::MODULE_STATUS).exists() => Mode::Kernel,
        None => Mode::Fallback,
    };
    (mode, params)
}

/// `/run/oom-ext/guard.lock`: ours, or held by another guard (its pid, as
/// written in the lock file, if readable).
enum Lock {
    Mine(std::fs::File),
    Held(Option<u32>),
}

fn take_lock(root: &Root, resume: bool) -> std::io::Result<Lock> {
    std::fs::create_dir_all(root.join(paths::RUN_DIR))?;
    let path = root.join(paths::LOCKFILE);
    // Not O_CLOEXEC: the lock must stay held across the re-exec after
    // switch-root (same pid, same open file description).
    let fd = nix::fcntl::open(
        &path,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW,
        FMode::from_bits_truncate(0o644),
    )
    .map_err(errno)?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    match nix::Error::result(r) {
        Ok(_) => Ok(Lock::Mine(file)),
        Err(nix::Error::EWOULDBLOCK) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            if resume && holder == Some(std::process::id()) {
                // Our pre-exec self holds it through the inherited descriptor.
                Ok(Lock::Mine(file))
            } else {
                Ok(Lock::Held(holder))
            }
        }
        Err(e) => Err(errno(e)),
    }
}

fn write_pid(root: &Root, lock: &mut std::fs::File, pid: u32) -> std::io::Result<()> {
    lock.set_len(0)?;
    lock.seek(SeekFrom::Start(0))?;
    lock.write_all(format!("{pid}\n").as_bytes())?;
    write_atomic(&root.join(paths::PIDFILE), &format!("{pid}\n"))
}

/// Locks memory and shields the guard from the OOM killer.
fn harden(root: &Root, log: &Log) {
    // MCL_CURRENT without MCL_ONFAULT on purpose: the binary is static, so
    // "current" is our own code and data (0.4 MiB with musl, 1.3 with
    // glibc), and all of it, including the OOM paths never run before the
    // first OOM, must be in RAM when the machine thrashes; with MCL_ONFAULT
    // those pages would be read from disk exactly then. The heap and stack
    // stay small.
    // glibc gives a second thread (the writer) its own malloc arena: a
    // 64 MiB reservation that MCL_FUTURE would lock. One arena is plenty.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a malloc tunable; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // SAFETY: mlockall only changes this process's paging; no memory is touched.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        log.warn(&format!(
            "mlockall failed: {}; the guard may be paged out",
            std::io::Error::last_os_error()
        ));
    }
    if let Err(e) = std::fs::write(root.join("proc/self/oom_score_adj"), "-1000\n") {
        log.warn(&format!("cannot set oom_score_adj=-1000: {e}"));
    }
}

/// Real-time priority for the loop (set after the setup, whose page faults
/// under emulation can take long): a runaway loop is stopped by
/// RLIMIT_RTTIME (SIGXCPU after 2 s of CPU without blocking, SIGKILL at 3 s)
/// and by the kernel's RT throttling.
fn realtime(root: &Root) {
    if !root.is_system() {
        return; // tests against a fake root keep the normal scheduler
    }
    let _ = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_RTTIME,
        2_000_000,
        3_000_000,
    );
    if set_scheduler(libc::SCHED_RR, 1).is_err() {
        // SAFETY: plain syscall on our own process.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -20) };
    }
}

/// sched_setscheduler(2) on this thread as a raw syscall: musl's libc
/// wrapper always fails with ENOSYS.
fn set_scheduler(policy: libc::c_int, priority: libc::c_int) -> std::io::Result<()> {
    // The kernel's struct sched_param is one int.
    let param: libc::c_int = priority;
    // SAFETY: the syscall reads one int through a pointer to a live local.
    let r = unsafe { libc::syscall(libc::SYS_sched_setscheduler, 0, policy, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `oom-ext guard`. Returns the exit code.
pub fn run(root: &Root, log: &mut Log, opts: Options) -> i32 {
    let mut lock = match take_lock(root, opts.resume) {
        Ok(Lock::Mine(f)) => f,
        Ok(Lock::Held(pid)) => {
            let who = pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "unknown".into());
            if opts.adopt {
                if let Some(p) = pid {
                    if let Err(e) = write_atomic(&root.join(paths::PIDFILE), &format!("{p}\n")) {
                        log.err(&format!("cannot write {}: {e}", paths::PIDFILE));
                        return 1;
                    }
                    log.info(&format!("adopted the running guard (pid {p})"));
                    return 0;
                }
            }
            log.warn(&format!(
                "another guard (pid {who}) holds /{}; not starting a second one",
                paths::LOCKFILE
            ));
            return if opts.adopt { 1 } else { 0 };
        }
        Err(e) => {
            log.err(&format!("cannot lock /{}: {e}", paths::LOCKFILE));
            return 1;
        }
    };
    // Block the signals we handle before the pidfile announces us: a SIGTERM
    // that arrives before the loop's signalfd exists must not kill the
    // guard without its clean-up. The mask survives fork and exec.
    if let Err(e) = handled_signals().thread_block() {
        log.warn(&format!("cannot block signals: {e}"));
    }
    if opts.adopt && !opts.resume {
        if let Err(e) = daemonize() {
            log.err(&format!("cannot daemonize: {e}"));
            return 1;
        }
    }
    if let Err(e) = write_pid(root, &mut lock, std::process::id()) {
        log.warn(&format!("cannot write pid files: {e}"));
    }
    if opts.adopt {
        // Tell the waiting parent (Type=forking) that the pidfile is there.
        finish_daemonize();
    }
    let (mode, params) = load_config(root, log);
    if mode == Mode::Off || !params.enabled {
        log.info("oom-ext is off (oom_ext=0): guard not needed, exiting");
        let _ = std::fs::remove_file(root.join(paths::PIDFILE));
        return 0;
    }
    harden(root, log);
    let mut g = match Guard::new(root.clone(), mode, params, log) {
        Ok(g) => g,
        Err(e) => {
            log.err(&format!("guard cannot start: {e}"));
            return 1;
        }
    };
    log.info(&format!(
        "guard {} in {} mode (pid {}, buffer {} MiB, psi {})",
        if opts.resume { "resumed" } else { "running" },
        mode.as_str(),
        std::process::id(),
        g.buffer.as_ref().map(|b| b.len() >> 20).unwrap_or(0),
        g.psi_word()
    ));
    g.write_state();
    realtime(root);
    // After realtime(): the worker inherits the loop's priority.
    g.start_writer(log);
    let code = g.run_loop(log);
    drop(lock);
    code
}

/// Set by [`daemonize`] in the child: the write end the parent waits on.
static READY_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// The signals the event loop reads from its signalfd.
fn handled_signals() -> SigSet {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    mask
}

/// Forks; the parent waits until the child has written the pidfile, then
/// exits 0 (systemd Type=forking). The child starts a new session.
fn daemonize() -> std::io::Result<()> {
    let (r, w) = nix::unistd::pipe().map_err(errno)?;
    // SAFETY: the process is single-threaded here, so the child may run any code.
    match unsafe { nix::unistd::fork() }.map_err(errno)? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(w);
            let mut b = [0u8; 1];
            let ok = std::fs::File::from(r)
                .read(&mut b)
                .map(|n| n == 1)
                .unwrap_or(false);
            std::process::exit(if ok { 0 } else { 1 });
        }
        nix::unistd::ForkResult::Child => {
            drop(r);
            let _ = nix::unistd::setsid();
            READY_FD.store(w.as_raw_fd(), std::sync::atomic::Ordering::Relaxed);
            std::mem::forget(w);
            Ok(())
        }
    }
}

fn finish_daemonize() {
    let fd = READY_FD.swap(-1, std::sync::atomic::Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: fd is the pipe's write end that daemonize() leaked for us.
        let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
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
}

/// The live state of the loop: the sources and what the executor remembers.
struct Guard {
    root: Root,
    m: Machine,
    buffer: Option<Buffer>,
    sigfd: SignalFd,
    timer: TimerFd,
    timer_at: Option<u64>,
    status_fd: Option<std::fs::File>,
    status_pollable: bool,
    psi: Option<OwnedFd>,
    psi_error: Option<String>,
    mountinfo: Option<OwnedFd>,
    procfd: Option<OwnedFd>,
    kmsg: Option<std::fs::File>,
    vmstat_kills: Option<u64>,
    /// /proc/vmstat as read by this wake-up's [`Guard::check_vmstat`]:
    /// the next [`Guard::facts`] uses it instead of reading it again.
    vmstat_now: Option<String>,
    /// Page size in kB, for vmstat's page counts.
    page_kb: i64,
    /// The file writes: done here until the loop starts the worker
    /// ([`Guard::start_writer`]), then by the worker.
    files: Option<Files>,
    writer: Option<Writer>,
    /// Kernel mode: victim lines may wait in the writer for the flag.
    flag_lines_sent: bool,
    /// After mount activity without a visible switch yet (PID 1 chroots a
    /// moment after the last mount event), a few re-checks: (when, attempt).
    mount_recheck: Option<(u64, u32)>,
    trigger_failed: bool,
    /// pidfds of OOM victims not yet exited ([`Action::WatchExit`]).
    victims: Vec<(u32, OwnedFd)>,
}

/// Re-checks after mount activity: 200 ms, then doubling, 5 in all.
const MOUNT_RECHECK_MS: u64 = 200;
const MOUNT_RECHECKS: u32 = 5;
/// Reboot, re-exec and exit wait this long at most for queued writes.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Src {
    Signal,
    Timer,
    Status,
    Psi,
    Mountinfo,
    Kmsg,
    Victim(u32),
}

impl Guard {
    fn new(root: Root, mode: Mode, params: Params, log: &Log) -> std::io::Result<Guard> {
        let mask = handled_signals();
        mask.thread_block().map_err(errno)?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(errno)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_BOOTTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(errno)?;
        let mut buffer = None;
        let mut buffer_failed = false;
        if mode == Mode::Fallback && params.bufsize > 0 {
            match Buffer::reserve(params.bufsize) {
                Ok(b) => buffer = b,
                Err(e) => {
                    log.warn(&format!(
                        "cannot reserve the {} MiB buffer: {e}; retrying later",
                        params.bufsize
                    ));
                    buffer_failed = true;
                }
            }
        }
        let mut m = Machine::new(mode, params, buffer.is_some());
        if buffer_failed {
            m.rearm_at = Some(now_ms() + machine::REARM_RETRY_MS);
        }
        let mut g = Guard {
            m,
            buffer,
            sigfd,
            timer,
            timer_at: None,
            status_fd: None,
            status_pollable: false,
            psi: None,
            psi_error: None,
            mountinfo: None,
            procfd: None,
            kmsg: None,
            vmstat_kills: None,
            vmstat_now: None,
            page_kb: nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .map_or(4, |b| b / 1024) as i64,
            files: Some(Files::new(root.clone(), log.clone())),
            writer: None,
            flag_lines_sent: false,
            mount_recheck: None,
            trigger_failed: false,
            victims: Vec::new(),
            root,
        };
        if mode == Mode::Kernel {
            g.open_status(log);
        }
        g.open_psi();
        if let Some(e) = &g.psi_error {
            log.warn(&format!("stall protection unavailable: {e}"));
        }
        if g.root.is_system() {
            g.mountinfo = open_raw(
                std::path::Path::new("/proc/self/mountinfo"),
                OFlag::O_RDONLY,
            )
            .ok();
            g.procfd = open_raw(
                std::path::Path::new("/proc"),
                OFlag::O_PATH | OFlag::O_DIRECTORY,
            )
            .ok();
        }
        g.open_kmsg();
        g.vmstat_kills = g.read_vmstat().and_then(|t| oomkill::vmstat_oom_kill(&t));
        Ok(g)
    }

    fn psi_word(&self) -> &'static str {
        match (&self.psi, self.m.params.psi) {
            (Some(_), _) => "on",
            (None, false) => "off",
            (None, true) => "unavailable",
        }
    }

    fn open_status(&mut self, log: &Log) {
        let path = self.root.join(paths::MODULE_STATUS);
        match std::fs::File::open(&path) {
            Ok(f) => {
                self.status_pollable = fs_is(&f, nix::sys::statfs::SYSFS_MAGIC);
                self.status_fd = Some(f);
            }
            Err(e) => log.warn(&format!(
                "kernel mode but cannot open {}: {e}",
                path.display()
            )),
        }
    }

    fn open_psi(&mut self) {
        self.psi = None;
        self.psi_error = None;
        if !self.m.params.psi {
            return;
        }
        let path = self.root.join(paths::PSI_MEMORY);
        let fd = match open_raw(&path, OFlag::O_RDWR | OFlag::O_NONBLOCK) {
            Ok(fd) => fd,
            Err(e) => {
                self.psi_error = Some(format!(
                    "cannot open {}: {e} (kernel without PSI, or psi=0 on the command line)",
                    path.display()
                ));
                return;
            }
        };
        if !fs_is(&fd, nix::sys::statfs::PROC_SUPER_MAGIC) {
            self.psi_error = Some(format!("{} is not in procfs", path.display()));
            return;
        }
        let trig = self.m.params.psi_trigger();
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
        let path = self.root.join(paths::KMSG);
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
        else {
            return;
        };
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
        std::fs::read_to_string(self.root.join(paths::VMSTAT)).ok()
    }

    fn facts(&mut self) -> Facts {
        let meminfo = std::fs::read_to_string(self.root.join(paths::MEMINFO)).ok();
        let page_kb = self.page_kb;
        let vmstat = self.vmstat_now.take().or_else(|| self.read_vmstat());
        Facts {
            now_ms: now_ms(),
            mem_available_kb: meminfo.as_deref().and_then(oomkill::mem_available_kb),
            mem_total_kb: meminfo.as_deref().and_then(oomkill::mem_total_kb),
            net_freed_kb: vmstat
                .as_deref()
                .and_then(oomkill::vmstat_net_freed_pages)
                .map(|p| p.wrapping_mul(page_kb)),
        }
    }

    fn read_status(&mut self) -> Option<status::ModuleStatus> {
        let f = self.status_fd.as_mut()?;
        let mut s = String::new();
        f.seek(SeekFrom::Start(0)).ok()?;
        f.take(64 * 1024).read_to_string(&mut s).ok()?;
        Some(status::parse(&s))
    }

    fn arm_timer(&mut self) {
        let want = match (self.m.next_deadline(), self.mount_recheck.map(|(t, _)| t)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if want == self.timer_at {
            return;
        }
        self.timer_at = want;
        let _ = match want {
            None => self.timer.unset(),
            Some(ms) => self.timer.set(
                Expiration::OneShot(TimeSpec::new(
                    (ms / 1000) as i64,
                    ((ms % 1000) * 1_000_000) as i64,
                )),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME,
            ),
        };
    }

    fn run_loop(&mut self, log: &mut Log) -> i32 {
        if let Some(s) = self.read_status() {
            let f = self.facts();
            let acts = self.m.handle(Event::Module(s), f);
            if let Some(code) = self.execute(acts, log) {
                return code;
            }
        }
        loop {
            self.arm_timer();
            let mut srcs: Vec<Src> = vec![Src::Signal, Src::Timer];
            let mut fds: Vec<PollFd> = vec![
                PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.timer.as_fd(), PollFlags::POLLIN),
            ];
            if let (Some(f), true) = (&self.status_fd, self.status_pollable) {
                srcs.push(Src::Status);
                fds.push(PollFd::new(
                    f.as_fd(),
                    PollFlags::POLLPRI | PollFlags::POLLERR,
                ));
            }
            if let Some(f) = &self.psi {
                srcs.push(Src::Psi);
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLPRI));
            }
            if let Some(f) = &self.mountinfo {
                srcs.push(Src::Mountinfo);
                fds.push(PollFd::new(
                    f.as_fd(),
                    PollFlags::POLLPRI | PollFlags::POLLERR,
                ));
            }
            if let Some(f) = &self.kmsg {
                srcs.push(Src::Kmsg);
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
            for (pid, fd) in &self.victims {
                srcs.push(Src::Victim(*pid));
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => {
                    log.err(&format!("poll failed: {}", e.desc()));
                    return 1;
                }
            }
            let ready: Vec<(Src, PollFlags)> = srcs
                .iter()
                .zip(fds.iter())
                .filter_map(|(s, f)| f.revents().filter(|r| !r.is_empty()).map(|r| (*s, r)))
                .collect();
            drop(fds);
            for (src, rev) in ready {
                if let Some(code) = self.on_ready(src, rev, log) {
                    return code;
                }
            }
        }
    }

    fn on_ready(&mut self, src: Src, rev: PollFlags, log: &mut Log) -> Option<i32> {
        let mut events = Vec::new();
        match src {
            Src::Signal => {
                while let Ok(Some(si)) = self.sigfd.read_signal() {
                    if si.ssi_signo == libc::SIGHUP as u32 {
                        self.reload(log);
                    } else {
                        return Some(self.shutdown(log, si.ssi_signo));
                    }
                }
            }
            Src::Timer => {
                let _ = self.timer.wait(); // consumes the expiry (non-blocking)
                self.timer_at = None;
                let now = now_ms();
                match self.mount_recheck {
                    Some((at, attempt)) if now >= at => {
                        self.mount_recheck = None;
                        self.check_switch(log, attempt + 1);
                    }
                    _ => {}
                }
                if self.m.next_deadline().is_some_and(|d| now >= d) {
                    events.push(Event::Timer);
                }
            }
            Src::Status => {
                if let Some(s) = self.read_status() {
                    events.push(Event::Module(s));
                }
            }
            Src::Psi => {
                if rev.contains(PollFlags::POLLERR) {
                    log.warn("PSI trigger went away; stall protection off");
                    self.psi = None;
                } else {
                    events.push(Event::Psi);
                    self.check_vmstat(&mut events);
                }
            }
            Src::Mountinfo => self.check_switch(log, 0),
            Src::Victim(pid) => {
                self.victims.retain(|(p, _)| *p != pid);
                events.push(Event::VictimExited(pid));
            }
            Src::Kmsg => {
                self.read_kmsg(&mut events);
                self.check_vmstat(&mut events);
                // Only a FIFO hangs up (its writer went away); /dev/kmsg
                // signals POLLERR on overrun, which the next read handles.
                if rev.contains(PollFlags::POLLHUP) {
                    self.kmsg = None;
                }
            }
        }
        for ev in events {
            let f = self.facts();
            let acts = self.m.handle(ev, f);
            if let Some(code) = self.execute(acts, log) {
                return Some(code);
            }
        }
        // Unused (no event): never let a later wake-up see it as fresh.
        self.vmstat_now = None;
        None
    }

    /// Switch-root check after mount activity (attempt 0) or a re-check.
    fn check_switch(&mut self, log: &mut Log, attempt: u32) {
        let Some(procfd) = &self.procfd else { return };
        if reanchor::switched(procfd) {
            // The re-exec ends the writer thread: its queued writes first.
            self.drain();
            reanchor::reanchor(procfd, log);
            // Only returns when no binary to re-exec was found.
            self.mountinfo = None;
            self.mount_recheck = None;
            log.set_root(Root::system());
        } else if attempt < MOUNT_RECHECKS {
            self.mount_recheck = Some((now_ms() + (MOUNT_RECHECK_MS << attempt), attempt));
        }
    }

    fn check_vmstat(&mut self, events: &mut Vec<Event>) {
        let text = self.read_vmstat();
        let now = text.as_deref().and_then(oomkill::vmstat_oom_kill);
        if let (Some(old), Some(new)) = (self.vmstat_kills, now) {
            if new > old && !events.iter().any(|e| matches!(e, Event::OomKill(_))) {
                events.push(Event::OomKill(None));
            }
        }
        if now.is_some() {
            self.vmstat_kills = now;
        }
        self.vmstat_now = text;
    }

    fn read_kmsg(&mut self, events: &mut Vec<Event>) {
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
                        if let Some(v) = oomkill::parse_kill(line) {
                            events.push(Event::OomKill(Some(v)));
                        }
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue, // overrun: skip ahead
                Err(_) => break,
            }
        }
    }

    fn reload(&mut self, log: &Log) {
        let (_, params) = load_config(&self.root, log);
        let old = self.m.params.clone();
        self.m.params = params.clone();
        if old.psi_trigger() != params.psi_trigger() || old.psi != params.psi {
            self.open_psi();
        }
        if self.m.mode == Mode::Fallback && old.bufsize != params.bufsize && self.buffer.is_some() {
            self.buffer = None;
            match Buffer::reserve(params.bufsize) {
                Ok(b) => self.buffer = b,
                Err(e) => log.warn(&format!("cannot reserve {} MiB: {e}", params.bufsize)),
            }
            self.m.buffer_armed = self.buffer.is_some();
        }
        log.info(&format!(
            "reloaded parameters (SIGHUP): {}",
            params.to_file().replace('\n', " ").trim_end()
        ));
        self.write_state();
    }

    fn shutdown(&mut self, log: &Log, sig: u32) -> i32 {
        self.buffer = None;
        // A clean stop is not a hang: do not leave a flag behind to be
        // reported on the next boot.
        self.submit(Job::RemoveOurs);
        self.drain();
        let _ = std::fs::remove_file(self.root.join(paths::PIDFILE));
        let _ = std::fs::remove_file(self.root.join(paths::GUARD_STATE));
        log.info(&format!("guard stopping on signal {sig}: buffer released"));
        0
    }

    fn new_flag(&self, source: &str) -> NewFlag {
        let read = |p: &str| {
            std::fs::read_to_string(self.root.join(p))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        NewFlag {
            source: source.to_string(),
            started_unix: crate::log::unix_now(),
            started_boot_s: now_ms() / 1000,
            kernel: read(paths::OSRELEASE),
            boot_id: read(paths::BOOT_ID),
            oom_events: self.m.counters.oom_events,
            oom_calls: self.vmstat_kills.unwrap_or(0),
        }
    }

    /// Runs the machine's actions; `Some(code)` ends the guard.
    fn execute(&mut self, acts: Vec<Action>, log: &Log) -> Option<i32> {
        let flag_path = self.m.params.crashflag_name.clone();
        for a in acts {
            match a {
                Action::Log(level, msg) => log.log(level, &msg),
                Action::ReleaseBuffer => self.buffer = None,
                Action::ArmBuffer => {
                    let r = Buffer::reserve(self.m.params.bufsize);
                    let ok = matches!(r, Ok(Some(_)));
                    if let Err(e) = &r {
                        log.warn(&format!("re-arm failed: {e}"));
                    }
                    self.buffer = r.ok().flatten();
                    let f = self.facts();
                    let more = self.m.armed(ok, f);
                    if let Some(c) = self.execute(more, log) {
                        return Some(c);
                    }
                }
                Action::CreateFlag(source) => {
                    let content = self.new_flag(source).serialize();
                    self.submit(Job::Create {
                        flag: flag_path.clone(),
                        content,
                    });
                }
                Action::AppendFlag(line) => {
                    let kernel = self.m.mode == Mode::Kernel;
                    self.flag_lines_sent |= kernel;
                    self.submit(Job::Append {
                        line,
                        module_flag: kernel.then(|| flag_path.clone()),
                    });
                }
                Action::RemoveFlag => self.submit(Job::RemoveOurs),
                Action::Trigger => match std::fs::write(self.root.join(paths::MODULE_TRIGGER), "1")
                {
                    Ok(()) => self.trigger_failed = false,
                    // Once per failure streak: a stall writes once a second.
                    Err(e) if !self.trigger_failed => {
                        self.trigger_failed = true;
                        log.warn(&format!("cannot write /{}: {e}", paths::MODULE_TRIGGER));
                    }
                    Err(_) => {}
                },
                Action::SysrqKill => {
                    if let Err(e) = std::fs::write(self.root.join(paths::SYSRQ), "f") {
                        log.warn(&format!("cannot write f to /{}: {e}", paths::SYSRQ));
                    }
                }
                Action::WatchExit(pid) => {
                    if !self.watch_exit(pid) {
                        let f = self.facts();
                        let more = self.m.handle(Event::VictimExited(pid), f);
                        if let Some(c) = self.execute(more, log) {
                            return Some(c);
                        }
                    }
                }
                Action::Reboot => return Some(self.reboot(log)),
                Action::WriteState => self.write_state(),
            }
        }
        if self.flag_lines_sent
            && self.m.module_state.as_deref() != Some("oom")
            && self.m.stall.is_none()
        {
            self.flag_lines_sent = false;
            self.submit(Job::DropPending);
        }
        None
    }

    /// Starts the writer thread; without it (it could not start) the loop
    /// does its writes itself, as before the loop began.
    fn start_writer(&mut self, log: &Log) {
        let Some(files) = self.files.take() else {
            return;
        };
        match Writer::spawn(files) {
            Ok(w) => self.writer = Some(w),
            Err(e) => {
                log.warn(&format!(
                    "cannot start the writer thread: {e}; the event loop writes the crash flag itself"
                ));
                self.files = Some(Files::new(self.root.clone(), log.clone()));
            }
        }
    }

    fn submit(&mut self, job: Job) {
        match (&self.writer, self.files.as_mut()) {
            (Some(w), _) => w.send(job),
            (None, Some(f)) => f.run(job),
            (None, None) => {}
        }
    }

    /// Waits (bounded) for the writes queued so far.
    fn drain(&self) {
        if let Some(w) = &self.writer {
            w.drain(DRAIN_LIMIT);
        }
    }

    /// Starts watching `pid` for its exit; false when it is gone already or
    /// cannot be watched (then nobody waits for it).
    fn watch_exit(&mut self, pid: u32) -> bool {
        if !self.root.is_system() {
            return false; // a fake root's pids are not this machine's
        }
        self.victims.retain(|(p, _)| *p != pid);
        // SAFETY: pidfd_open takes two integers and returns a new descriptor
        // or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return false; // ESRCH: exited already; ENOSYS: kernel before 5.3
        }
        // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        if self.victims.len() >= machine::MAX_WATCHED_VICTIMS {
            self.victims.remove(0);
        }
        self.victims.push((pid, fd));
        true
    }

    fn reboot(&mut self, log: &Log) -> i32 {
        // gracetime_reboot=1 must be in the flag before the sync.
        self.drain();
        nix::unistd::sync();
        if !self.root.is_system() {
            // Against a fake root, record the decision instead of rebooting this machine.
            let _ = std::fs::write(self.root.join("run/oom-ext/reboot-requested"), "1\n");
            log.err("reboot requested (fake root: not rebooting)");
            return 0;
        }
        let r = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
        log.err(&format!("reboot failed: {r:?}"));
        1
    }

    fn write_state(&mut self) {
        let c = &self.m.counters;
        let text = format!(
            "pid={}\nmode={}\nstate={}\nbuffer_bytes={}\noom_events={}\nreleases={}\nrearms={}\nstall_events={}\nkills={}\nvictims={}\npsi={}\nmodule_state={}\n",
            std::process::id(),
            self.m.mode.as_str(),
            self.m.state_word(),
            self.buffer.as_ref().map(|b| b.len()).unwrap_or(0),
            c.oom_events,
            c.releases,
            c.rearms,
            c.stall_events,
            c.kills,
            c.victims,
            self.psi_word(),
            self.m.module_state.as_deref().unwrap_or("none"),
        );
        self.submit(Job::State(text));
    }
}
