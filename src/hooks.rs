//! The executables of /etc/oom-ext/report.d (and of kill.d, the guard's
//! [`crate::policy::kill_hooks`]): run in name order, each in a process
//! group of its own, with the JSON event on a pipe as stdin and /dev/null
//! as stdout and stderr (nothing of ours to hold open), the whole group
//! killed when the hook exits or its time is up. Only regular files (not
//! symlinks), executable, owned by root or by us and not writable by group
//! or others, are run.

use crate::log::Log;
use crate::paths;
use crate::root::Root;
use crate::rootfs;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The report hooks to run, in name order, or why one is skipped.
pub fn list(root: &Root) -> Vec<(String, Result<(), &'static str>)> {
    list_in(root, paths::REPORT_D)
}

/// The hooks of directory `dir` (relative to the root), as [`list`].
pub fn list_in(root: &Root, dir: &str) -> Vec<(String, Result<(), &'static str>)> {
    let Ok(dir) = rootfs::open_dir(root, dir) else {
        return Vec::new();
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mut v: Vec<(String, Result<(), &'static str>)> = dir
        .entries()
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, st)| st.st_mode & 0o111 != 0 || !rootfs::is_regular(st))
        .map(|(n, st)| {
            let name = String::from_utf8_lossy(&n).into_owned();
            let ok = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                Err("a symlink: not run")
            } else if !rootfs::is_regular(&st) {
                Err("not a regular file: not run")
            } else if st.st_uid != 0 && st.st_uid != me {
                Err("owned by another user: not run")
            } else if st.st_mode & 0o022 != 0 {
                Err("writable by group or others: not run")
            } else if n.iter().any(|&b| !(0x21..=0x7e).contains(&b)) {
                Err("name has bytes outside 0x21..0x7e: not run")
            } else {
                Ok(())
            };
            (name, ok)
        })
        .collect();
    v.sort();
    v
}

/// Runs the hooks with `json` on stdin, each bounded by `timeout`.
pub fn run_all(root: &Root, json: &str, log: &Log, timeout: Duration) {
    for (name, ok) in list(root) {
        let shown = format!(
            "/{}/{}",
            paths::REPORT_D,
            crate::cmdline::escape_value(&name)
        );
        if let Err(why) = ok {
            log.warn(&format!("report hook {shown}: {why}"));
            continue;
        }
        let path = root.join(paths::REPORT_D).join(&name);
        match run_one(&path, json, timeout) {
            Ok(0) => log.info(&format!("report hook {shown} done")),
            Ok(code) => log.warn(&format!("report hook {shown} exited with {code}")),
            Err(e) => log.warn(&format!("report hook {shown}: {e}")),
        }
    }
}

fn set_nonblocking(fd: i32) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fl = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// What a hook gets besides its stdin.
#[derive(Debug, Default)]
pub struct Child {
    /// Added to the inherited environment.
    pub env: Vec<(String, String)>,
    /// Started by the guard: this `oom_score_adj` file (opened in the child,
    /// so it is the child's own) is set to 0 and the scheduling policy to
    /// the normal one, so the hook neither inherits the guard's -1000 nor
    /// its real-time priority. `None` for report hooks.
    pub plain: Option<std::ffi::CString>,
}

/// Runs one hook; returns its exit code (128 + signal when killed by one).
pub fn run_one(path: &std::path::Path, json: &str, timeout: Duration) -> std::io::Result<i32> {
    run_child(path, json, &Child::default(), timeout)
}

/// In the child between fork and exec: only async-signal-safe syscalls.
fn make_plain(adj: &std::ffi::CStr) {
    let param: libc::c_int = 0;
    // SAFETY: plain syscalls on the calling (child) process with a pointer
    // to a live local and a NUL-terminated path; errors are ignored (the
    // hook then runs as it is).
    unsafe {
        libc::syscall(libc::SYS_sched_setscheduler, 0, libc::SCHED_OTHER, &param);
        libc::setpriority(libc::PRIO_PROCESS, 0, 0);
        let fd = libc::open(adj.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::write(fd, b"0\n".as_ptr().cast(), 2);
            libc::close(fd);
        }
    }
}

/// [`run_one`] with an environment and, for the guard, [`Child::plain`].
pub fn run_child(
    path: &std::path::Path,
    json: &str,
    spec: &Child,
    timeout: Duration,
) -> std::io::Result<i32> {
    use std::os::unix::process::ExitStatusExt;
    let mut cmd = Command::new(path);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(adj) = spec.plain.clone() {
        // SAFETY: the closure only makes async-signal-safe syscalls
        // (make_plain) and allocates nothing: the path was made before.
        unsafe {
            cmd.pre_exec(move || {
                make_plain(&adj);
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn()?;
    // Its pid is its process group's id (process_group(0)).
    let group = Pid::from_raw(child.id() as i32);
    // A hook that does not read its input must not block us (a report can
    // exceed the pipe buffer): the pipe is non-blocking and fed between the
    // polls for the hook's exit, so the timeout still applies. (No writer
    // thread: a thread would link glibc's pthread_create and resolver
    // state into the static binary, about 30 kB.)
    let mut stdin = child.stdin.take();
    if let Some(s) = &stdin {
        set_nonblocking(s.as_raw_fd())?;
    }
    let mut data = json.as_bytes();
    let start = Instant::now();
    let result = loop {
        if let Some(s) = &mut stdin {
            loop {
                match s.write(data) {
                    Ok(n) if n > 0 && n < data.len() => data = &data[n..],
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // Everything written (closing the pipe gives the hook
                    // EOF), or the hook closed its end: stop feeding it.
                    _ => {
                        data = &[];
                        break;
                    }
                }
            }
            if data.is_empty() {
                stdin = None;
            }
        }
        if let Some(st) = child.try_wait()? {
            break Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
        }
        if start.elapsed() > timeout {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.wait();
            break Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "killed after {} s with its process group",
                    timeout.as_secs_f32()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // What the hook left running in its group ends with it.
    let _ = killpg(group, Signal::SIGKILL);
    result
}
