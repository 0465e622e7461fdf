//! Who dies when the guard kills: the process table, the rules of
//! `/etc/oom-ext/policy.conf` and `policy.d/*.conf`, the run-time ordered
//! list, and the choice of one victim among them (issue 17).
//!
//! [`rank`], [`rules`], [`pattern`], [`parent`] and [`scope`] are pure and
//! tested with made-up tables; [`proctable`], [`load`], [`kill`] and
//! [`act`] do the I/O around them (the kill's syscalls are in
//! [`crate::sys`]). See docs/policy.md.
#![forbid(unsafe_code)]

pub mod act;
pub mod align;
pub mod kill;
pub mod kill_hooks;
pub mod load;
pub mod parent;
pub mod pattern;
pub mod proctable;
pub mod rank;
pub mod rules;
pub mod scope;
pub mod view;

/// One process (thread group) as the chooser sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22):
    /// with the pid, names this process and not a later one with its pid.
    pub start_time: u64,
    /// `comm` (at most 15 bytes).
    pub name: String,
    /// `/proc/PID/exe` without a ` (deleted)` suffix; `None` if unreadable.
    pub exe: Option<String>,
    /// The arguments joined by single spaces.
    pub cmdline: String,
    /// Real uid.
    pub uid: u32,
    /// The cgroup v2 path (`0::PATH` of `/proc/PID/cgroup`).
    pub cgroup: Option<String>,
    /// `/proc/PID/oom_score`: the kernel's ranking (it honours oom_score_adj).
    pub oom_score: u32,
    pub oom_score_adj: i32,
    pub rss_kb: u64,
    pub kthread: bool,
}

impl Proc {
    /// The systemd unit the process runs in (see [`scope::unit_of`]).
    pub fn unit(&self) -> Option<&str> {
        self.cgroup.as_deref().and_then(scope::unit_of)
    }
}
