//! The guard's decisions as a pure state machine: events and the time in,
//! actions and the next deadline out. The event loop (`guard::run`) does the
//! I/O; tests drive this directly with made-up clocks.

use crate::flag::Victim;
use crate::init::Mode;
use crate::log::Level;
use crate::params::Params;
use crate::status::ModuleStatus;

/// No OOM evidence for this long (and enough memory) ends the OOM state,
/// as the module defines it.
pub const QUIET_MS: u64 = 5000;
/// Re-check interval while the OOM state waits for memory to come back.
pub const RECHECK_MS: u64 = 1000;
/// Retry interval for re-arming when memory is short.
pub const REARM_RETRY_MS: u64 = 30_000;
/// In kernel mode the module panics at gracetime; the guard reboots itself
/// only if the stall outlasts gracetime by this much (the module did not).
pub const BACKSTOP_MS: u64 = 5000;
/// OOM state ends only with at least this much available (or bufsize).
pub const MIN_AVAILABLE_KB: u64 = 16 * 1024;
/// A stall counts as OOM (trigger, release, kill) only while MemAvailable
/// is below this share of MemTotal. After the hog is killed the stall can
/// go on for seconds while evicted code is read back in; a kill then would
/// only hit innocent processes (measured: docs/stall.md).
pub const MEMORY_SHORT_PCT: u64 = 15;
/// Stall events less than this far apart (and at least two PSI windows)
/// are one stall. In VM runs a stall often paused (the released buffer, a
/// lucky reclaim) and resumed; each resumption that counted as a new stall
/// started the kill timer again. With two windows the guest froze 6-8 s
/// before the kill; with 5 s, pauses of 5.1 and 8.1 s after the buffer
/// release (swap leak) put the kill 15 s after the first event and the
/// guest froze 15-20 s, most of it reading back what had gone to swap.
/// Only events while memory is short count, so the longer gap does not
/// join a calm machine's stalls into one.
pub const STALL_GAP_MIN_MS: u64 = 10_000;
/// A stall with memory to spare is logged at most this often.
pub const CALM_STALL_LOG_MS: u64 = 60_000;
/// After an OOM kill, no sysrq kill until the victims have exited (their
/// memory is free again), or until this long has passed. Measured (CI,
/// 6.1): 2.1 s after sysrq f killed a swap leaker its 350 MB were still
/// mapped, and the next sysrq f took the innocent bystander (the kernel
/// passes over a victim once the oom_reaper is done with it, gone or not).
pub const VICTIM_EXIT_WAIT_MS: u64 = 10_000;
/// At most this many victims are watched at once (a storm kills dozens).
pub const MAX_WATCHED_VICTIMS: usize = 16;
/// A sysrq kill is made this long after it is decided, and only if memory
/// did not start coming back meanwhile. Measured (CI, 6.12, storm): at the
/// workload's end its hogs were exiting on their own, their 339 MB not yet
/// free (MemAvailable low, 39 MB on the per-CPU lists), no hog left in the
/// task list, and sysrq f killed the bystander.
pub const KILL_CONFIRM_MS: u64 = 200;
/// Memory that came free (net of allocations) during the confirmation
/// that calls a kill off: 4 MiB in 200 ms is 20 MB/s, more than reclaim
/// gives back while the machine is stuck.
pub const COMING_BACK_KB: i64 = 4 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The PSI trigger fired: memory stall above the threshold in a window.
    Psi,
    /// The kernel's OOM killer killed a process (from the kernel log), or
    /// the `oom_kill` counter in /proc/vmstat rose (no victim known).
    OomKill(Option<Victim>),
    /// The module's status changed.
    Module(ModuleStatus),
    /// The deadline from [`Machine::next_deadline`] was reached.
    Timer,
    /// A victim the loop watched ([`Action::WatchExit`]) has exited, or
    /// cannot be watched.
    VictimExited(u32),
}

/// What the loop measured just before handing over an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    /// CLOCK_BOOTTIME in ms.
    pub now_ms: u64,
    /// MemAvailable from /proc/meminfo, if readable.
    pub mem_available_kb: Option<u64>,
    /// MemTotal from /proc/meminfo, if readable.
    pub mem_total_kb: Option<u64>,
    /// Pages freed minus pages allocated since boot, in kB (/proc/vmstat),
    /// if readable: the difference between two readings is how much free
    /// memory grew.
    pub net_freed_kb: Option<i64>,
}

impl Facts {
    /// Memory is short enough that killing helps (unknown counts as short).
    pub fn memory_short(&self) -> bool {
        match (self.mem_available_kb, self.mem_total_kb) {
            (Some(avail), Some(total)) if total > 0 => avail * 100 < total * MEMORY_SHORT_PCT,
            _ => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Log(Level, String),
    ReleaseBuffer,
    /// Allocate and lock the buffer again; the loop reports back with
    /// [`Machine::armed`].
    ArmBuffer,
    CreateFlag(&'static str),
    AppendFlag(String),
    RemoveFlag,
    /// Write `1` to the module's trigger.
    Trigger,
    /// sysrq `f`: the kernel's OOM killer picks a victim.
    SysrqKill,
    /// Report [`Event::VictimExited`] when this process has exited.
    WatchExit(u32),
    /// sync, then reboot.
    Reboot,
    /// Counters changed: rewrite /run/oom-ext/guard.state.
    WriteState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oom {
    pub start_ms: u64,
    pub last_evidence_ms: u64,
    /// Earliest next end check (pushed out while memory is short).
    pub check_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub start_ms: u64,
    pub last_ms: u64,
    pub last_kill_ms: Option<u64>,
    /// MemAvailable at the first event.
    pub avail_start_kb: Option<u64>,
    /// What this stall's buffer release gave back (0: nothing released).
    pub released_kb: u64,
    /// Next check whether the released buffer has been eaten.
    pub eaten_check_ms: Option<u64>,
}

/// A kill decided, to be made at `at_ms` unless memory comes back first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingKill {
    pub at_ms: u64,
    pub net_freed_kb: i64,
    pub why: String,
}

/// Kills whose victims have not exited yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Awaiting {
    /// The last kill or victim line.
    pub since_ms: u64,
    pub pids: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub oom_events: u64,
    pub releases: u64,
    pub rearms: u64,
    pub stall_events: u64,
    pub kills: u64,
    pub victims: u64,
}

#[derive(Debug, Clone)]
pub struct Machine {
    pub mode: Mode,
    pub params: Params,
    pub buffer_armed: bool,
    /// Fallback mode's own OOM state.
    pub oom: Option<Oom>,
    pub stall: Option<Stall>,
    pub rearm_at: Option<u64>,
    pub module_state: Option<String>,
    pub counters: Counters,
    /// Set from a kill until its victims have exited.
    pub awaiting: Option<Awaiting>,
    pub pending_kill: Option<PendingKill>,
    rebooting: bool,
    calm_stall_logged_ms: Option<u64>,
}

impl Machine {
    pub fn new(mode: Mode, params: Params, buffer_armed: bool) -> Self {
        Machine {
            mode,
            params,
            buffer_armed,
            oom: None,
            stall: None,
            rearm_at: None,
            module_state: None,
            counters: Counters::default(),
            awaiting: None,
            pending_kill: None,
            rebooting: false,
            calm_stall_logged_ms: None,
        }
    }

    /// The state word for status files: armed | oom | recovering | off.
    pub fn state_word(&self) -> &str {
        if self.mode == Mode::Kernel {
            // The module owns the state in kernel mode.
            return match self.module_state.as_deref() {
                Some(s) => s,
                None => "unknown",
            };
        }
        if self.oom.is_some() {
            "oom"
        } else if self.rearm_at.is_some() {
            "recovering"
        } else if self.buffer_armed {
            "armed"
        } else {
            "off"
        }
    }

    fn stall_gap_ms(&self) -> u64 {
        (2 * u64::from(self.params.psi_window_ms)).max(STALL_GAP_MIN_MS)
    }

    pub fn next_deadline(&self) -> Option<u64> {
        let mut d: Vec<u64> = Vec::new();
        if let Some(o) = self.oom {
            d.push(o.check_ms.max(o.last_evidence_ms + QUIET_MS));
            if self.params.gracetime > 0 {
                d.push(o.start_ms + u64::from(self.params.gracetime) * 1000);
            }
        }
        if let Some(s) = self.stall {
            d.push(s.last_ms + self.stall_gap_ms() + 1);
            d.extend(s.eaten_check_ms);
            if self.mode == Mode::Kernel && self.params.gracetime > 0 {
                d.push(s.start_ms + u64::from(self.params.gracetime) * 1000 + BACKSTOP_MS);
            }
        }
        if let Some(r) = self.rearm_at {
            d.push(r);
        }
        if let Some(k) = &self.pending_kill {
            d.push(k.at_ms);
        }
        if self.rebooting {
            return None;
        }
        d.into_iter().min()
    }

    pub fn handle(&mut self, ev: Event, f: Facts) -> Vec<Action> {
        let mut out = Vec::new();
        if self.rebooting {
            return out;
        }
        match ev {
            Event::Psi => self.on_psi(f, &mut out),
            Event::OomKill(v) => self.on_kill(v, f, &mut out),
            Event::Module(s) => self.on_module(s, f, &mut out),
            Event::Timer => self.on_timer(f, &mut out),
            Event::VictimExited(pid) => self.on_exit(pid, f, &mut out),
        }
        out
    }

    /// The loop's answer to [`Action::ArmBuffer`].
    pub fn armed(&mut self, ok: bool, f: Facts) -> Vec<Action> {
        if ok {
            self.buffer_armed = true;
            self.rearm_at = None;
            self.counters.rearms += 1;
            vec![
                Action::Log(
                    Level::Info,
                    format!("re-armed the {} MiB buffer", self.params.bufsize),
                ),
                Action::WriteState,
            ]
        } else {
            self.rearm_at = Some(f.now_ms + REARM_RETRY_MS);
            vec![Action::Log(
                Level::Warning,
                "cannot re-arm the buffer now; retrying in 30 s".into(),
            )]
        }
    }

    fn on_psi(&mut self, f: Facts, out: &mut Vec<Action>) {
        let now = f.now_ms;
        self.counters.stall_events += 1;
        if !f.memory_short() {
            // Not an OOM: with memory to spare a stall comes from elsewhere
            // (a cgroup's memory.high, a burst of refaults after a kill, a
            // host that starved this VM). Acting on it would release the
            // buffer and leave a crash flag for nothing.
            if self.stall.is_none()
                && self
                    .calm_stall_logged_ms
                    .map_or(true, |t| now >= t + CALM_STALL_LOG_MS)
            {
                self.calm_stall_logged_ms = Some(now);
                out.push(Action::Log(
                    Level::Info,
                    format!(
                        "memory stall, but {} kB of {} kB available: not treated as OOM",
                        f.mem_available_kb.unwrap_or(0),
                        f.mem_total_kb.unwrap_or(0)
                    ),
                ));
            }
            return;
        }
        let gap = self.stall_gap_ms();
        let stall = match self.stall {
            Some(mut s) if now.saturating_sub(s.last_ms) <= gap => {
                s.last_ms = now;
                s
            }
            _ => {
                out.push(Action::Log(
                    Level::Warning,
                    format!(
                        "memory stall: tasks waited over {} ms for memory within {} ms; treating it as OOM",
                        self.params.psi_stall_ms, self.params.psi_window_ms
                    ),
                ));
                let released_kb = if self.releases_buffer_now() {
                    u64::from(self.params.bufsize) * 1024
                } else {
                    0
                };
                let kill_ms = u64::from(self.params.psi_kill_ms);
                Stall {
                    start_ms: now,
                    last_ms: now,
                    last_kill_ms: None,
                    avail_start_kb: f.mem_available_kb,
                    released_kb,
                    eaten_check_ms: (released_kb > 0
                        && kill_ms > 0
                        && f.mem_available_kb.is_some())
                    .then_some(now + kill_ms),
                }
            }
        };
        self.stall = Some(stall);
        match self.mode {
            Mode::Kernel => out.push(Action::Trigger),
            _ => self.evidence(now, "psi", f, out),
        }
        self.maybe_kill(f, None, out);
        out.push(Action::WriteState);
    }

    /// Whether the OOM state this stall starts frees a buffer (the module's
    /// in kernel mode, ours in fallback mode).
    fn releases_buffer_now(&self) -> bool {
        self.params.bufsize > 0
            && match self.mode {
                Mode::Kernel => self.module_state.as_deref() == Some("armed"),
                _ => self.oom.is_none() && self.buffer_armed,
            }
    }

    /// sysrq f if the stall has lasted psi_kill_ms since it began (or since
    /// the last kill) and no victim is still on its way out; made
    /// KILL_CONFIRM_MS later ([`Machine::confirm_kill`]) when the memory
    /// counters can tell whether memory is coming back meanwhile.
    fn maybe_kill(&mut self, f: Facts, why: Option<String>, out: &mut Vec<Action>) {
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
        let why = why.unwrap_or_else(|| match stall.last_kill_ms {
            None => format!("memory stall for {since} ms"),
            Some(_) => format!(
                "memory stall for {} ms, {since} ms since the last kill",
                now.saturating_sub(stall.start_ms)
            ),
        });
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
                    "{}, but the kernel's OOM killer killed pid {} meanwhile: no sysrq f",
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
                    "{}, but memory is coming back without a kill ({} kB freed in {} ms, {} kB available): no sysrq f",
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
            format!("{why}: asking the kernel's OOM killer to pick a victim (sysrq f)"),
        ));
        out.push(Action::SysrqKill);
    }

    fn on_kill(&mut self, v: Option<Victim>, f: Facts, out: &mut Vec<Action>) {
        if let Some(v) = &v {
            self.counters.victims += 1;
            out.push(Action::Log(
                Level::Notice,
                format!(
                    "OOM killer killed pid {} ({}), anon-rss {} kB",
                    v.pid, v.comm, v.rss_kb
                ),
            ));
            // Any victim, ours or the kernel's own: a kill before its memory
            // is back would only find the next process.
            let a = self.awaiting.get_or_insert(Awaiting {
                since_ms: f.now_ms,
                pids: Vec::new(),
            });
            a.since_ms = f.now_ms;
            if a.pids.len() < MAX_WATCHED_VICTIMS && !a.pids.contains(&v.pid) {
                a.pids.push(v.pid);
                out.push(Action::WatchExit(v.pid));
            }
        }
        if self.mode != Mode::Kernel {
            self.evidence(f.now_ms, "vmstat", f, out);
        }
        if let Some(v) = v {
            out.push(Action::AppendFlag(v.line()));
        }
    }

    fn on_exit(&mut self, pid: u32, f: Facts, out: &mut Vec<Action>) {
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

    fn on_module(&mut self, s: ModuleStatus, f: Facts, out: &mut Vec<Action>) {
        let new = s.state.clone();
        if new != self.module_state {
            let old = self
                .module_state
                .clone()
                .unwrap_or_else(|| "unknown".into());
            let newv = new.clone().unwrap_or_else(|| "unknown".into());
            out.push(Action::Log(
                if newv == "oom" { Level::Warning } else { Level::Info },
                format!(
                    "module state {old} -> {newv} (reserved {} bytes, oom_events {}, releases {}, rearms {})",
                    s.reserved_bytes.unwrap_or(0),
                    s.oom_events.unwrap_or(0),
                    s.releases.unwrap_or(0),
                    s.rearms.unwrap_or(0)
                ),
            ));
            if newv == "oom" {
                if let Some(kb) = f.mem_available_kb {
                    out.push(Action::AppendFlag(format!("mem_available_kb={kb}\n")));
                }
            }
            self.module_state = new;
            out.push(Action::WriteState);
        }
    }

    /// OOM evidence in fallback mode: enter or extend the OOM state.
    fn evidence(&mut self, now: u64, source: &'static str, f: Facts, out: &mut Vec<Action>) {
        if let Some(o) = self.oom.as_mut() {
            o.last_evidence_ms = now;
            return;
        }
        self.oom = Some(Oom {
            start_ms: now,
            last_evidence_ms: now,
            check_ms: now,
        });
        self.counters.oom_events += 1;
        self.rearm_at = None;
        let mut msg = format!("OOM state entered (source {source})");
        if self.buffer_armed {
            self.buffer_armed = false;
            self.counters.releases += 1;
            out.push(Action::ReleaseBuffer);
            msg.push_str(&format!(
                ": released the {} MiB buffer",
                self.params.bufsize
            ));
        }
        out.push(Action::Log(Level::Warning, msg));
        if self.params.crashflag {
            out.push(Action::CreateFlag(source));
            if let Some(kb) = f.mem_available_kb {
                out.push(Action::AppendFlag(format!("mem_available_kb={kb}\n")));
            }
        }
        out.push(Action::WriteState);
    }

    fn on_timer(&mut self, f: Facts, out: &mut Vec<Action>) {
        let now = f.now_ms;
        let grace_ms = u64::from(self.params.gracetime) * 1000;
        // Stall over?
        if let Some(s) = self.stall {
            if now > s.last_ms + self.stall_gap_ms() {
                self.stall = None;
                // Memory is back: a victim still on its way out holds back
                // no kill in a later stall.
                self.awaiting = None;
                self.pending_kill = None;
                out.push(Action::Log(
                    Level::Info,
                    format!(
                        "memory stall over after {} ms",
                        s.last_ms.saturating_sub(s.start_ms)
                    ),
                ));
            } else if self.mode == Mode::Kernel
                && grace_ms > 0
                && now >= s.start_ms + grace_ms + BACKSTOP_MS
            {
                self.reboot(
                    format!(
                        "memory stall has lasted {} s, over gracetime",
                        (now - s.start_ms) / 1000
                    ),
                    out,
                );
                return;
            }
        }
        if let Some(k) = self.pending_kill.take() {
            if now >= k.at_ms {
                self.confirm_kill(k, f, out);
            } else {
                self.pending_kill = Some(k);
            }
        }
        self.check_eaten(f, out);
        if let Some(mut o) = self.oom {
            if grace_ms > 0 && now >= o.start_ms + grace_ms {
                self.reboot(
                    format!(
                        "OOM state has lasted {} s (gracetime {} s)",
                        (now - o.start_ms) / 1000,
                        self.params.gracetime
                    ),
                    out,
                );
                return;
            }
            if let (Some(st), true) = (self.stall, now >= o.check_ms) {
                // The buffer's release pauses a stall for seconds: the OOM
                // state ends only with the stall, or the next event would
                // start a new one (a new flag, the buffer gone).
                o.check_ms = st.last_ms + self.stall_gap_ms() + 1;
                self.oom = Some(o);
            } else if now >= o.last_evidence_ms + QUIET_MS && now >= o.check_ms {
                let need = MIN_AVAILABLE_KB.max(u64::from(self.params.bufsize) * 1024);
                match f.mem_available_kb {
                    Some(kb) if kb >= need => {
                        self.oom = None;
                        out.push(Action::Log(
                            Level::Notice,
                            format!(
                                "OOM state over after {} s; buffer re-armed in {} s",
                                (now - o.start_ms) / 1000,
                                self.params.resettime
                            ),
                        ));
                        if self.params.crashflag {
                            out.push(Action::RemoveFlag);
                        }
                        if self.params.bufsize > 0 {
                            self.rearm_at = Some(now + u64::from(self.params.resettime) * 1000);
                        }
                        out.push(Action::WriteState);
                    }
                    _ => {
                        o.check_ms = now + RECHECK_MS;
                        self.oom = Some(o);
                    }
                }
            }
        }
        if let Some(r) = self.rearm_at {
            if now >= r && self.oom.is_none() && !self.buffer_armed {
                // Re-arming must not itself push the machine into OOM.
                let need = u64::from(self.params.bufsize) * 2 * 1024 + 64 * 1024;
                if f.mem_available_kb.is_some_and(|kb| kb >= need) {
                    self.rearm_at = Some(u64::MAX);
                    out.push(Action::ArmBuffer);
                } else {
                    self.rearm_at = Some(now + REARM_RETRY_MS);
                    out.push(Action::Log(
                        Level::Info,
                        "memory still short; re-arm retried in 30 s".into(),
                    ));
                }
            }
        }
    }

    /// While the buffer's release hides a stall, no PSI event comes to say
    /// it goes on: measured (CI, 6.12, swap leak) 5 s without one while the
    /// leaker ate the buffer and 52 MB queued for the swap disk. Once half
    /// the released memory is gone again and memory is still short, the
    /// stall counts as going on.
    fn check_eaten(&mut self, f: Facts, out: &mut Vec<Action>) {
        let Some(s) = self.stall else { return };
        let Some(at) = s.eaten_check_ms else { return };
        if f.now_ms < at {
            return;
        }
        let (Some(start), Some(now_kb)) = (s.avail_start_kb, f.mem_available_kb) else {
            return;
        };
        let eaten = now_kb <= start + s.released_kb / 2;
        if !f.memory_short() {
            // The release was enough: no more checks for this stall.
            self.stall = Some(Stall {
                eaten_check_ms: None,
                ..s
            });
            return;
        }
        // maybe_kill holds back while a victim is on its way out (at most
        // VICTIM_EXIT_WAIT_MS), as it does for events.
        if eaten {
            let why = format!(
                "memory stall for {} ms, the released {} MiB eaten again ({} kB available, {} kB when it began)",
                f.now_ms - s.start_ms,
                s.released_kb / 1024,
                now_kb,
                start
            );
            self.maybe_kill(f, Some(why), out);
            out.push(Action::WriteState);
        }
        if let Some(st) = self.stall.as_mut() {
            if st.eaten_check_ms.is_some() {
                st.eaten_check_ms = Some(f.now_ms + RECHECK_MS);
            }
        }
    }

    fn reboot(&mut self, why: String, out: &mut Vec<Action>) {
        self.rebooting = true;
        out.push(Action::Log(
            Level::Err,
            format!("{why}: syncing and rebooting"),
        ));
        out.push(Action::AppendFlag("gracetime_reboot=1\n".into()));
        out.push(Action::Reboot);
    }
}

fn pid_list(pids: &[u32]) -> String {
    pids.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, mem_mb: u64) -> Facts {
        Facts {
            now_ms: ms,
            mem_available_kb: Some(mem_mb * 1024),
            mem_total_kb: Some(1024 * 1024),
            net_freed_kb: None,
        }
    }

    /// Facts with the vmstat counter: `freed_kb` net freed since boot.
    fn counted(ms: u64, mem_mb: u64, freed_kb: i64) -> Facts {
        Facts {
            net_freed_kb: Some(freed_kb),
            ..at(ms, mem_mb)
        }
    }

    #[test]
    fn no_kill_while_memory_comes_back_by_itself() {
        // Regression (CI, 6.12, storm): at the workload's end its hogs were
        // exiting on their own, MemAvailable still low, and sysrq f killed
        // the bystander. A kill is made KILL_CONFIRM_MS after it is
        // decided, and not if memory came free meanwhile.
        let mut m = Machine::new(Mode::Kernel, Params::default(), false);
        m.handle(Event::Psi, counted(0, 20, 1000));
        let a = m.handle(Event::Psi, counted(2000, 20, 1000));
        assert!(!a.contains(&Action::SysrqKill), "{a:?}");
        assert_eq!(m.next_deadline(), Some(2000 + KILL_CONFIRM_MS));
        // An event meanwhile decides nothing more.
        assert!(!m
            .handle(Event::Psi, counted(2100, 20, 1500))
            .contains(&Action::SysrqKill));
        // 40 MB came free in 200 ms: called off.
        let a = m.handle(Event::Timer, counted(2200, 30, 41_000));
        assert!(!a.contains(&Action::SysrqKill), "{a:?}");
        assert!(
            logged(
                &a,
                "memory is coming back without a kill (40000 kB freed in 200 ms"
            ),
            "{a:?}"
        );
        assert_eq!(m.counters.kills, 0);
        // Still stuck a second later, nothing freed: decided again, and made.
        assert!(!m
            .handle(Event::Psi, counted(3000, 20, 41_000))
            .contains(&Action::SysrqKill));
        let a = m.handle(Event::Timer, counted(3200, 20, 42_000));
        assert!(a.contains(&Action::SysrqKill), "{a:?}");
        assert!(logged(&a, "memory stall for 3000 ms: asking"), "{a:?}");
        assert_eq!(m.counters.kills, 1);
        assert_eq!(m.stall.unwrap().last_kill_ms, Some(3200));
        // A pending kill dies with its stall.
        let mut m = Machine::new(Mode::Kernel, Params::default(), false);
        m.handle(Event::Psi, counted(0, 20, 0));
        m.handle(Event::Psi, counted(2000, 20, 0));
        m.handle(Event::Timer, counted(2200, 500, 0));
        assert_eq!(m.counters.kills, 0, "memory no longer short: no kill");
        m.handle(Event::Psi, counted(2500, 20, 0));
        m.handle(Event::Timer, counted(12_501, 500, 0));
        assert_eq!((m.stall.is_none(), m.pending_kill.is_none()), (true, true));
    }

    #[test]
    fn no_sysrq_when_the_kernel_kills_during_the_confirmation() {
        // Regression (benchmark, 6.12, storm, fallback mode): the kernel
        // killed a hog on its own between the decision and the sysrq f;
        // the sysrq found that victim still exiting and killed nobody, and
        // its empty wait replaced the watch on the real victim: no kill
        // for 10 s, a 7 s freeze.
        let mut m = Machine::new(Mode::Kernel, Params::default(), false);
        m.handle(Event::Psi, counted(0, 20, 1000));
        m.handle(Event::Psi, counted(2000, 20, 1000));
        let a = m.handle(
            Event::OomKill(Some(Victim {
                pid: 9,
                comm: "hog".into(),
                rss_kb: 100,
            })),
            counted(2100, 20, 1000),
        );
        assert!(a.contains(&Action::WatchExit(9)), "{a:?}");
        let a = m.handle(Event::Timer, counted(2200, 20, 1000));
        assert!(!a.contains(&Action::SysrqKill), "{a:?}");
        assert!(
            logged(&a, "the kernel's OOM killer killed pid 9 meanwhile"),
            "{a:?}"
        );
        assert_eq!(m.counters.kills, 0);
        // Its exit ends the wait; the stall goes on: decided and made again.
        m.handle(Event::VictimExited(9), counted(2500, 20, 1000));
        m.handle(Event::Psi, counted(3000, 20, 1000));
        let a = m.handle(Event::Timer, counted(3200, 20, 1000));
        assert!(a.contains(&Action::SysrqKill), "{a:?}");
        // A wait given up after 10 s does not call off the next kill.
        let a = m.handle(Event::Psi, counted(12_000, 20, 1000));
        assert!(!logged(&a, "have not exited after"), "{a:?}");
        let a = m.handle(Event::Psi, counted(13_300, 20, 1000));
        assert!(logged(&a, "have not exited after"), "{a:?}");
        let a = m.handle(Event::Timer, counted(13_500, 20, 1000));
        assert!(a.contains(&Action::SysrqKill), "{a:?}");
    }

    fn kinds(a: &[Action]) -> Vec<String> {
        a.iter()
            .filter(|a| !matches!(a, Action::Log(..) | Action::WriteState))
            .map(|a| format!("{a:?}"))
            .collect()
    }

    fn fallback(p: Params) -> Machine {
        Machine::new(Mode::Fallback, p, true)
    }

    #[test]
    fn idle_guard_has_no_deadline() {
        let m = fallback(Params::default());
        assert_eq!(m.next_deadline(), None);
        assert_eq!(
            Machine::new(Mode::Kernel, Params::default(), false).next_deadline(),
            None
        );
    }

    #[test]
    fn fallback_oom_cycle_release_flag_end_rearm() {
        let p = Params {
            resettime: 10,
            ..Params::default()
        };
        let mut m = fallback(p);
        let a = m.handle(
            Event::OomKill(Some(Victim {
                pid: 7,
                comm: "hog".into(),
                rss_kb: 100,
            })),
            at(1000, 500),
        );
        assert_eq!(
            kinds(&a),
            vec![
                "WatchExit(7)",
                "ReleaseBuffer",
                "CreateFlag(\"vmstat\")",
                "AppendFlag(\"mem_available_kb=512000\\n\")",
                "AppendFlag(\"victim=7 hog 100\\n\")"
            ]
        );
        assert_eq!(m.state_word(), "oom");
        assert_eq!(m.next_deadline(), Some(6000));
        // More evidence pushes the end out.
        assert!(kinds(&m.handle(Event::OomKill(None), at(3000, 500))).is_empty());
        assert_eq!(m.next_deadline(), Some(8000));
        // Memory still short at the deadline: re-check a second later.
        assert!(kinds(&m.handle(Event::Timer, at(8000, 10))).is_empty());
        assert_eq!(m.next_deadline(), Some(9000));
        let a = m.handle(Event::Timer, at(9000, 500));
        assert!(kinds(&a).contains(&"RemoveFlag".to_string()), "{a:?}");
        assert_eq!(m.state_word(), "recovering");
        assert_eq!(m.next_deadline(), Some(19000));
        assert_eq!(
            kinds(&m.handle(Event::Timer, at(19000, 500))),
            vec!["ArmBuffer"]
        );
        m.armed(true, at(19001, 500));
        assert_eq!(m.state_word(), "armed");
        assert_eq!(m.next_deadline(), None);
        assert_eq!(
            (
                m.counters.oom_events,
                m.counters.releases,
                m.counters.rearms
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn rearm_waits_for_memory() {
        let p = Params {
            resettime: 1,
            psi_kill_ms: 0,
            ..Params::default()
        };
        let mut m = fallback(p);
        m.handle(Event::OomKill(None), at(0, 500));
        m.handle(Event::Timer, at(5000, 500));
        assert_eq!(m.rearm_at, Some(6000));
        assert!(kinds(&m.handle(Event::Timer, at(6000, 50))).is_empty());
        assert_eq!(m.rearm_at, Some(36000));
        assert_eq!(
            kinds(&m.handle(Event::Timer, at(36000, 500))),
            vec!["ArmBuffer"]
        );
        m.armed(false, at(36001, 500));
        assert_eq!(m.rearm_at, Some(66001));
    }

    #[test]
    fn gracetime_reboots_with_the_flag_marked() {
        let p = Params {
            gracetime: 30,
            ..Params::default()
        };
        let mut m = fallback(p);
        m.handle(Event::Psi, at(0, 10));
        for t in (1000..30000).step_by(1000) {
            let a = m.handle(Event::Psi, at(t, 10));
            assert!(!a.contains(&Action::Reboot));
        }
        assert_eq!(m.next_deadline(), Some(30000));
        let a = m.handle(Event::Timer, at(30000, 10));
        assert_eq!(
            kinds(&a),
            vec!["AppendFlag(\"gracetime_reboot=1\\n\")", "Reboot"]
        );
        assert_eq!(m.next_deadline(), None);
        assert!(m.handle(Event::Psi, at(31000, 10)).is_empty());
    }

    fn victim(pid: u32) -> Event {
        Event::OomKill(Some(Victim {
            pid,
            comm: "hog".into(),
            rss_kb: 1000,
        }))
    }

    #[test]
    fn sustained_stall_asks_the_kernel_to_kill_at_most_once_per_period() {
        let mut m = Machine::new(Mode::Kernel, Params::default(), false);
        assert_eq!(kinds(&m.handle(Event::Psi, at(0, 10))), vec!["Trigger"]);
        assert_eq!(kinds(&m.handle(Event::Psi, at(1000, 10))), vec!["Trigger"]);
        assert_eq!(
            kinds(&m.handle(Event::Psi, at(2000, 10))),
            vec!["Trigger", "SysrqKill"]
        );
        m.handle(victim(50), at(2100, 10));
        m.handle(Event::VictimExited(50), at(2500, 10));
        assert_eq!(m.awaiting, None);
        assert_eq!(kinds(&m.handle(Event::Psi, at(3000, 10))), vec!["Trigger"]);
        assert_eq!(
            kinds(&m.handle(Event::Psi, at(4500, 10))),
            vec!["Trigger", "SysrqKill"]
        );
        m.handle(victim(51), at(4600, 10));
        m.handle(Event::VictimExited(51), at(4700, 10));
        // A pause shorter than the gap is the same stall: the kill timer
        // runs on.
        assert_eq!(m.next_deadline(), Some(14501));
        assert_eq!(
            kinds(&m.handle(Event::Psi, at(12000, 10))),
            vec!["Trigger", "SysrqKill"]
        );
        m.handle(victim(52), at(12100, 10));
        m.handle(Event::VictimExited(52), at(12200, 10));
        // A longer pause starts a new stall: no kill at once.
        m.handle(Event::Timer, at(22001, 10));
        assert_eq!(m.stall, None);
        assert_eq!(kinds(&m.handle(Event::Psi, at(23000, 10))), vec!["Trigger"]);
        assert_eq!(m.counters.kills, 3);
    }

    fn logged(a: &[Action], text: &str) -> bool {
        a.iter()
            .any(|x| matches!(x, Action::Log(_, l) if l.contains(text)))
    }

    #[test]
    fn no_second_kill_while_the_last_victim_is_still_exiting() {
        // Regression (CI, 6.1, swap leak): the leaker took seconds to exit
        // (its memory half in swap), the stall went on, and the next sysrq f
        // killed the innocent bystander.
        let mut m = fallback(Params::default());
        m.handle(Event::Psi, at(0, 10));
        assert!(m
            .handle(Event::Psi, at(2000, 10))
            .contains(&Action::SysrqKill));
        assert!(m
            .handle(victim(470), at(2050, 10))
            .contains(&Action::WatchExit(470)));
        for t in (3000..12000).step_by(1000) {
            let a = m.handle(Event::Psi, at(t, 10));
            assert!(!a.contains(&Action::SysrqKill), "at {t} ms: {a:?}");
        }
        // Exited: its memory is free, and the next event decides again.
        let a = m.handle(Event::VictimExited(470), at(11500, 10));
        assert!(logged(&a, "pid 470 has exited"), "{a:?}");
        assert!(!m
            .handle(Event::Psi, at(12000, 500))
            .contains(&Action::SysrqKill));
        assert!(m
            .handle(Event::Psi, at(13500, 10))
            .contains(&Action::SysrqKill));
        assert_eq!(m.counters.kills, 2);
        // Exits of pids nobody waits for change nothing.
        assert!(m.handle(Event::VictimExited(9), at(13600, 10)).is_empty());
    }

    #[test]
    fn a_victim_that_never_exits_holds_kills_back_only_so_long() {
        let mut m = Machine::new(Mode::Kernel, Params::default(), false);
        m.handle(Event::Psi, at(0, 10));
        assert!(m
            .handle(Event::Psi, at(2000, 10))
            .contains(&Action::SysrqKill));
        m.handle(victim(60), at(2100, 10));
        for t in (3000..=12000).step_by(1000) {
            assert!(!m.handle(Event::Psi, at(t, 10)).contains(&Action::SysrqKill));
        }
        let a = m.handle(Event::Psi, at(12100, 10));
        assert!(a.contains(&Action::SysrqKill), "{a:?}");
        assert!(logged(&a, "(60) have not exited after 10000 ms"), "{a:?}");
        // A kill the kernel log never named a victim for also waits.
        assert!(!m
            .handle(Event::Psi, at(15000, 10))
            .contains(&Action::SysrqKill));
        let a = m.handle(Event::Psi, at(22100, 10));
        assert!(logged(&a, "not named in the kernel log"), "{a:?}");
        assert!(a.contains(&Action::SysrqKill));
    }

    #[test]
    fn the_kernels_own_kills_are_waited_for_too() {
        let mut m = fallback(Params::default());
        m.handle(Event::Psi, at(0, 10));
        m.handle(victim(70), at(1500, 10));
        assert!(!m
            .handle(Event::Psi, at(2500, 10))
            .contains(&Action::SysrqKill));
        m.handle(Event::VictimExited(70), at(3000, 10));
        assert!(m
            .handle(Event::Psi, at(3500, 10))
            .contains(&Action::SysrqKill));
    }

    #[test]
    fn a_released_buffer_eaten_again_counts_as_the_stall_going_on() {
        // Regression (CI, 6.12, swap leak): the release paused the stall's
        // events for 5 s while the leaker ate the buffer; the kill came late.
        for mode in [Mode::Fallback, Mode::Kernel] {
            let mut m = Machine::new(mode, Params::default(), mode == Mode::Fallback);
            if mode == Mode::Kernel {
                m.handle(
                    Event::Module(crate::status::parse("state=armed\n")),
                    at(0, 100),
                );
            }
            m.handle(Event::Psi, at(0, 20));
            assert_eq!(m.stall.unwrap().released_kb, 32 * 1024, "{mode:?}");
            assert_eq!(m.next_deadline(), Some(2000), "{mode:?}");
            // 7 of 32 MiB eaten after 2 s: not yet, look again in a second.
            assert!(!m
                .handle(Event::Timer, at(2000, 45))
                .contains(&Action::SysrqKill));
            assert_eq!(m.next_deadline(), Some(3000), "{mode:?}");
            let a = m.handle(Event::Timer, at(3000, 35));
            assert!(a.contains(&Action::SysrqKill), "{mode:?}: {a:?}");
            assert!(logged(&a, "released 32 MiB eaten again"), "{a:?}");
            assert_eq!(m.stall.unwrap().eaten_check_ms, None, "{mode:?}");
        }
        // A release that was enough: no kill and no more checks.
        let mut m = fallback(Params::default());
        m.handle(Event::Psi, at(0, 140));
        let a = m.handle(Event::Timer, at(2000, 300));
        assert!(!a.contains(&Action::SysrqKill));
        assert_eq!(m.stall.unwrap().eaten_check_ms, None);
        // Nothing released (no buffer): events alone decide.
        let mut m = Machine::new(Mode::Fallback, Params::default(), false);
        m.handle(Event::Psi, at(0, 20));
        assert_eq!(m.stall.unwrap().eaten_check_ms, None);
        assert_eq!(m.next_deadline(), Some(5000));
    }

    #[test]
    fn an_eaten_buffer_waits_for_a_victim_as_events_do() {
        // The kernel's own kill named a victim that does not exit: the
        // eaten-again check holds back for VICTIM_EXIT_WAIT_MS, then kills,
        // like the event path (a_victim_that_never_exits_...).
        let mut m = fallback(Params::default());
        m.handle(Event::Psi, at(0, 20));
        m.handle(victim(80), at(500, 20));
        for t in (2000..11_000).step_by(1000) {
            if t == 9000 {
                // An event keeps the stall going (no kill: the victim).
                assert!(!m.handle(Event::Psi, at(t, 20)).contains(&Action::SysrqKill));
            }
            let a = m.handle(Event::Timer, at(t, 20));
            assert!(!a.contains(&Action::SysrqKill), "at {t} ms: {a:?}");
            assert_eq!(m.next_deadline(), Some(t + 1000), "still checking");
        }
        let a = m.handle(Event::Timer, at(11_000, 20));
        assert!(a.contains(&Action::SysrqKill), "{a:?}");
        assert!(logged(&a, "(80) have not exited after 10500 ms"), "{a:?}");
        assert!(logged(&a, "eaten again"), "{a:?}");
        // A later event kill says how long the whole stall has lasted.
        m.handle(victim(81), at(11_100, 20));
        m.handle(Event::VictimExited(81), at(11_500, 20));
        let a = m.handle(Event::Psi, at(13_000, 20));
        assert!(
            logged(&a, "memory stall for 13000 ms, 2000 ms since the last kill"),
            "{a:?}"
        );
    }

    #[test]
    fn fallback_oom_state_ends_only_with_the_stall() {
        // Regression (CI, 6.12): the state ended 5 s into a paused stall and
        // the next event began a second one.
        let mut m = fallback(Params {
            psi_kill_ms: 0,
            ..Params::default()
        });
        m.handle(Event::Psi, at(0, 20));
        let a = m.handle(Event::Timer, at(5000, 300));
        assert_eq!(m.state_word(), "oom", "{a:?}");
        assert_eq!(m.next_deadline(), Some(10001));
        m.handle(Event::Timer, at(10001, 300));
        assert_eq!(m.stall, None);
        assert_eq!(m.state_word(), "recovering");
        assert_eq!(m.counters.oom_events, 1);
    }

    #[test]
    fn no_kill_once_the_hog_is_gone_even_if_the_stall_goes_on() {
        // Regression (VM thrash run): after the hog died, code read back in
        // kept PSI firing and every 2 s sysrq f took the next innocent.
        let mut m = Machine::new(Mode::Kernel, Params::default(), false);
        m.handle(Event::Psi, at(0, 40));
        m.handle(Event::Psi, at(1000, 40));
        assert!(kinds(&m.handle(Event::Psi, at(2000, 40))).contains(&"SysrqKill".to_string()));
        for t in (3000..12000).step_by(1000) {
            let a = m.handle(Event::Psi, at(t, 800));
            assert!(kinds(&a).is_empty(), "at {t} ms: {a:?}");
        }
        assert_eq!(m.counters.kills, 1);
        m.handle(Event::Timer, at(12001, 800));
        assert_eq!(
            m.stall, None,
            "events with memory to spare do not extend the stall"
        );
        // Short again (the hog came back): a new stall, killed after psi_kill_ms.
        assert_eq!(kinds(&m.handle(Event::Psi, at(13000, 40))), vec!["Trigger"]);
        assert!(kinds(&m.handle(Event::Psi, at(15000, 40))).contains(&"SysrqKill".to_string()));
        // Unknown memory figures do not block a kill.
        let mut m = Machine::new(Mode::Fallback, Params::default(), false);
        let unknown = |ms| Facts {
            now_ms: ms,
            ..Facts::default()
        };
        m.handle(Event::Psi, unknown(0));
        assert!(kinds(&m.handle(Event::Psi, unknown(2000))).contains(&"SysrqKill".to_string()));
    }

    #[test]
    fn a_stall_with_memory_to_spare_is_not_an_oom() {
        // Regression (CI, 6.12): a boot-time stall on a starved VM host made
        // the guard trigger the module, which wrote a crash flag.
        for mode in [Mode::Kernel, Mode::Fallback] {
            let mut m = Machine::new(mode, Params::default(), true);
            let mut logs = 0;
            for t in (0..10_000).step_by(1000) {
                let a = m.handle(Event::Psi, at(t, 500));
                assert!(kinds(&a).is_empty(), "{mode:?} at {t} ms: {a:?}");
                logs += a.iter().filter(|x| matches!(x, Action::Log(..))).count();
            }
            assert_eq!(logs, 1, "logged once, not once per event");
            assert_eq!(m.stall, None);
            assert_eq!(m.oom, None);
            assert!(m.buffer_armed);
            assert_eq!(m.counters.stall_events, 10);
        }
    }

    #[test]
    fn kernel_mode_backstop_reboots_only_well_after_gracetime() {
        let p = Params {
            gracetime: 10,
            psi_kill_ms: 0,
            ..Params::default()
        };
        let mut m = Machine::new(Mode::Kernel, p, false);
        m.handle(Event::Psi, at(0, 10));
        for t in (1000..=15000).step_by(1000) {
            m.handle(Event::Psi, at(t, 10));
        }
        assert_eq!(m.next_deadline(), Some(15000));
        assert!(m
            .handle(Event::Timer, at(15000, 10))
            .contains(&Action::Reboot));
    }

    #[test]
    fn kernel_mode_logs_module_transitions_and_appends_victims() {
        let mut m = Machine::new(Mode::Kernel, Params::default(), false);
        let s = crate::status::parse("state=oom\n");
        let a = m.handle(Event::Module(s.clone()), at(0, 100));
        assert_eq!(
            kinds(&a),
            vec!["AppendFlag(\"mem_available_kb=102400\\n\")"]
        );
        assert!(
            m.handle(Event::Module(s), at(1, 100)).is_empty(),
            "no change, nothing to say"
        );
        let a = m.handle(
            Event::OomKill(Some(Victim {
                pid: 1,
                comm: "a b".into(),
                rss_kb: 2,
            })),
            at(2, 100),
        );
        assert_eq!(
            kinds(&a),
            vec!["WatchExit(1)", "AppendFlag(\"victim=1 a b 2\\n\")"]
        );
        assert_eq!(m.oom, None, "the module owns the OOM state in kernel mode");
    }

    #[test]
    fn no_flag_when_crashflag_is_off_and_no_release_without_buffer() {
        let p = Params {
            crashflag: false,
            ..Params::default()
        };
        let mut m = Machine::new(Mode::Fallback, p, false);
        let a = m.handle(Event::OomKill(None), at(0, 10));
        assert!(kinds(&a).is_empty(), "{a:?}");
        let a = m.handle(Event::Timer, at(5000, 100));
        assert!(!kinds(&a).contains(&"RemoveFlag".to_string()));
    }
}
