//! The kill concern: a stall that lasts `psi_kill_ms` decides a kill, made
//! KILL_CONFIRM_MS later unless memory came back meanwhile; no kill while
//! the last victims are still on their way out. The executor's
//! [`Action::Kill`] carries the kill out: oom_ext's choice (src/policy/),
//! sysrq `f` when it finds no one.

#![forbid(unsafe_code)]

use super::{pid_list, Action, Facts, Machine, MemcgKill};
use crate::flag::Victim;
use crate::log::Level;
use crate::runtime::Mode;

/// After an OOM kill, no further kill until the victims have exited (their
/// memory is free again), or until this long has passed (why: docs/stall.md).
pub const VICTIM_EXIT_WAIT_MS: u64 = 10_000;
/// At most this many victims are watched at once (a storm kills dozens).
pub const MAX_WATCHED_VICTIMS: usize = 16;
/// A kill is made this long after it is decided, and only if memory did not
/// start coming back meanwhile (why: docs/stall.md).
pub const KILL_CONFIRM_MS: u64 = 200;
/// Memory that came free (net of allocations) during the confirmation
/// that calls a kill off: 4 MiB in 200 ms is 20 MB/s, more than reclaim
/// gives back while the machine is stuck.
pub const COMING_BACK_KB: i64 = 4 * 1024;

/// A kill decided, to be made at `at_ms` unless memory comes back first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingKill {
    pub(super) at_ms: u64,
    pub(super) net_freed_kb: i64,
    pub(super) why: String,
}

/// Kills whose victims have not exited yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Awaiting {
    /// The last kill or victim line.
    pub(super) since_ms: u64,
    pub(super) pids: Vec<u32>,
}

impl Machine {
    pub(super) fn kill_deadline(&self) -> Option<u64> {
        self.pending_kill.as_ref().map(|k| k.at_ms)
    }

    /// The stall is over: nothing is killed for it any more, and a victim
    /// still on its way out holds back no kill in a later stall.
    pub(super) fn stall_over(&mut self) {
        self.awaiting = None;
        self.pending_kill = None;
    }

    /// A kill if the stall has lasted psi_kill_ms since it began (or since
    /// the last kill) and no victim is still on its way out; made
    /// KILL_CONFIRM_MS later ([`Machine::kill_timer`]) when the memory
    /// counters can tell whether memory is coming back meanwhile.
    pub(super) fn maybe_kill(&mut self, f: Facts, why: Option<String>, out: &mut Vec<Action>) {
        let now = f.now_ms;
        let kill_ms = u64::from(self.params.psi_kill_ms);
        let Some(stall) = self.stall else { return };
        if kill_ms == 0 || self.pending_kill.is_some() {
            return;
        }
        let since = now.saturating_sub(stall.last_kill_ms.unwrap_or(stall.start_ms));
        if since < kill_ms {
            return;
        }
        let why = why.unwrap_or_else(|| match stall.last_kill_ms {
            None => format!("memory stall for {since} ms"),
            Some(_) => format!(
                "memory stall for {} ms, {since} ms since the last kill",
                now.saturating_sub(stall.start_ms)
            ),
        });
        self.request_kill(f, why, out);
    }

    /// A kill for `why`, unless one is pending or the last victims are
    /// still on their way out (at most VICTIM_EXIT_WAIT_MS); made
    /// KILL_CONFIRM_MS later when the memory counters can tell whether
    /// memory is coming back meanwhile. The harm concern asks here directly.
    pub(super) fn request_kill(&mut self, f: Facts, why: String, out: &mut Vec<Action>) {
        let now = f.now_ms;
        if self.pending_kill.is_some() {
            return;
        }
        if let Some(a) = &self.awaiting {
            if now < a.since_ms + VICTIM_EXIT_WAIT_MS {
                return;
            }
            out.push(Action::Log(
                Level::Warning,
                format!(
                    "the last OOM victims ({}) have not exited after {} ms",
                    if a.pids.is_empty() {
                        "not named in the kernel log".to_string()
                    } else {
                        pid_list(&a.pids)
                    },
                    now - a.since_ms
                ),
            ));
            // Given up on: a victim named from now on is a new one.
            self.awaiting = None;
        }
        match f.net_freed_kb {
            Some(net_freed_kb) => {
                self.pending_kill = Some(PendingKill {
                    at_ms: now + KILL_CONFIRM_MS,
                    net_freed_kb,
                    why,
                })
            }
            None => self.kill_now(now, why, out),
        }
    }

    /// The pending kill, when its time has come.
    pub(super) fn kill_timer(&mut self, f: Facts, out: &mut Vec<Action>) {
        if let Some(k) = self.pending_kill.take() {
            if f.now_ms >= k.at_ms {
                self.confirm_kill(k, f, out);
            } else {
                self.pending_kill = Some(k);
            }
        }
    }

    /// The kill decided KILL_CONFIRM_MS ago, unless memory came back: the
    /// kernel would pick the next process while the last ones still free
    /// theirs, and that one would be innocent.
    fn confirm_kill(&mut self, k: PendingKill, f: Facts, out: &mut Vec<Action>) {
        if self.stall.is_none() {
            return;
        }
        // The kernel killed on its own meanwhile: a sysrq f now would find
        // that victim still exiting and kill nobody, or kill the next one.
        if let Some(a) = &self.awaiting {
            out.push(Action::Log(
                Level::Info,
                format!(
                    "{}, but the kernel's OOM killer killed pid {} meanwhile: no kill",
                    k.why,
                    pid_list(&a.pids)
                ),
            ));
            return;
        }
        let freed = f.net_freed_kb.map(|n| n - k.net_freed_kb);
        if !f.memory_short() || freed.is_some_and(|kb| kb >= COMING_BACK_KB) {
            out.push(Action::Log(
                Level::Info,
                format!(
                    "{}, but memory is coming back without a kill ({} kB freed in {} ms, {} kB available): no kill",
                    k.why,
                    freed.unwrap_or(0),
                    f.now_ms.saturating_sub(k.at_ms - KILL_CONFIRM_MS),
                    f.mem_available_kb.unwrap_or(0)
                ),
            ));
            return;
        }
        self.kill_now(f.now_ms, k.why, out);
        out.push(Action::WriteState);
    }

    fn kill_now(&mut self, now: u64, why: String, out: &mut Vec<Action>) {
        self.counters.kills += 1;
        self.awaiting = Some(Awaiting {
            since_ms: now,
            pids: Vec::new(),
        });
        if let Some(s) = self.stall.as_mut() {
            s.last_kill_ms = Some(now);
            s.eaten_check_ms = None;
        }
        out.push(Action::Log(
            Level::Warning,
            format!("{why}: killing a victim"),
        ));
        out.push(Action::Kill);
    }

    /// When a stall that began at `start_ms` has outlasted gracetime by
    /// BACKSTOP_MS (kernel mode: the module's gracetime timer should have
    /// panicked by then); None: no backstop.
    pub(super) fn backstop_ms(&self, start_ms: u64) -> Option<u64> {
        (self.mode == Mode::Kernel && self.params.gracetime > 0)
            .then(|| start_ms + u64::from(self.params.gracetime) * 1000 + super::BACKSTOP_MS)
    }

    /// The last response to a stall, for either trigger model: past its
    /// backstop the guard reboots itself. True: rebooting, stop.
    pub(super) fn stall_backstop(&mut self, now: u64, out: &mut Vec<Action>) -> bool {
        let Some(s) = self.stall else { return false };
        if !self.backstop_ms(s.start_ms).is_some_and(|b| now >= b) {
            return false;
        }
        self.reboot(
            format!(
                "memory stall has lasted {} s, over gracetime",
                (now - s.start_ms) / 1000
            ),
            out,
        );
        true
    }

    /// The kernel's OOM killer killed a process (ours or its own choice).
    pub(super) fn on_kill(&mut self, v: Option<Victim>, f: Facts, out: &mut Vec<Action>) {
        if let Some(v) = &v {
            out.push(Action::Log(
                Level::Notice,
                format!(
                    "OOM killer killed pid {} ({}), anon-rss {} kB",
                    v.pid, v.comm, v.rss_kb
                ),
            ));
        }
        self.victims(v.into_iter().collect(), f, out);
    }

    /// A kill at a memory cgroup's limit: counted and logged, and in the
    /// flag while an OOM state has one; never a victim to wait for, no
    /// OOM evidence (the machine may have memory to spare).
    pub(super) fn on_memcg_kill(&mut self, k: MemcgKill, out: &mut Vec<Action>) {
        self.counters.memcg_kills += 1;
        let v = &k.victim;
        out.push(Action::Log(
            Level::Notice,
            format!(
                "cgroup OOM: the kernel killed pid {} ({}), anon-rss {} kB, at the memory limit of {}: not a system OOM",
                v.pid,
                crate::cmdline::escape_value(&v.comm),
                v.rss_kb,
                k.memcg
                    .as_deref()
                    .map_or_else(|| "its cgroup".into(), crate::cmdline::escape_value)
            ),
        ));
        if self.in_oom_state() {
            out.push(self.memcg_kills_line());
        }
        out.push(Action::WriteState);
    }

    /// The OOM state with its crash flag: fallback mode's own, or the
    /// module's.
    pub(super) fn in_oom_state(&self) -> bool {
        match self.mode {
            Mode::Kernel => self.module_state.as_deref() == Some("oom"),
            _ => self.oom.is_some(),
        }
    }

    /// `memcg_kills=N` for the flag: the report tells cgroup kills this
    /// boot apart from the system OOM's victims (the last line wins).
    pub(super) fn memcg_kills_line(&self) -> Action {
        Action::AppendFlag(format!("memcg_kills={}\n", self.counters.memcg_kills))
    }

    /// Victims oom_ext chose and killed itself ([`Action::Kill`]'s answer;
    /// the executor logged them). None: a dry run, or sysrq `f` was
    /// written (its victim comes from the kernel log).
    pub(super) fn on_victims(&mut self, vs: Vec<Victim>, f: Facts, out: &mut Vec<Action>) {
        if !vs.is_empty() {
            self.victims(vs, f, out);
        }
    }

    /// Awaits the victims (ours or the kernel's), counts them as OOM
    /// evidence in fallback mode, adds them to the flag.
    fn victims(&mut self, vs: Vec<Victim>, f: Facts, out: &mut Vec<Action>) {
        for v in &vs {
            self.counters.victims += 1;
            // Any victim, ours or the kernel's own: a kill before its memory
            // is back would only find the next process.
            let a = self.awaiting.get_or_insert(Awaiting {
                since_ms: f.now_ms,
                pids: Vec::new(),
            });
            a.since_ms = f.now_ms;
            if a.pids.len() < MAX_WATCHED_VICTIMS && !a.pids.contains(&v.pid) {
                a.pids.push(v.pid);
                self.watch(v.pid, out);
            }
        }
        if self.mode != Mode::Kernel {
            self.oom_evidence(f.now_ms, "vmstat", f, out);
        }
        for v in vs {
            out.push(Action::AppendFlag(v.line()));
        }
    }

    /// Asks the loop to watch `pid`, the oldest watched one given up when
    /// MAX_WATCHED_VICTIMS are watched already.
    fn watch(&mut self, pid: u32, out: &mut Vec<Action>) {
        self.watched.retain(|p| *p != pid);
        if self.watched.len() >= MAX_WATCHED_VICTIMS {
            out.push(Action::Unwatch(self.watched.remove(0)));
        }
        self.watched.push(pid);
        out.push(Action::WatchExit(pid));
    }

    pub(super) fn on_exit(&mut self, pid: u32, f: Facts, out: &mut Vec<Action>) {
        self.watched.retain(|p| *p != pid);
        let Some(a) = self.awaiting.as_mut() else {
            return;
        };
        let Some(i) = a.pids.iter().position(|p| *p == pid) else {
            return;
        };
        a.pids.remove(i);
        if !a.pids.is_empty() {
            return;
        }
        let waited = f.now_ms.saturating_sub(a.since_ms);
        self.awaiting = None;
        // The next kill still needs a PSI event, now with the victim's
        // memory back, so the MemAvailable gate means something again.
        out.push(Action::Log(
            Level::Info,
            format!("OOM victim pid {pid} has exited ({waited} ms after the kill)"),
        ));
    }
}
