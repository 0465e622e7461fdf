//! The guard's decisions as a pure state machine: events and the time in,
//! actions and the next deadline out. The event loop (`guard::event_loop`)
//! does the I/O; tests drive this directly with made-up clocks.
//!
//! One concern per file, each with its own state, its own deadline and its
//! own step in [`Machine::on_timer`]:
//! - [`stall`]: when a run of PSI events is one stall, and when it is over
//!   (the trigger model);
//! - [`kill`]: whether and when to kill, the confirmation, the victims
//!   awaited (the executor's [`Action::Kill`] carries it out);
//! - [`oom`]: the OOM state (fallback mode's own; the module's in kernel
//!   mode), the crash flag, gracetime;
//! - [`rearm`]: the buffer's re-arm after the OOM state;
//! - [`harm_trigger`]: with `harm=1`, the harm model (issue 16) in the
//!   stall concern's place.

#![forbid(unsafe_code)]

mod harm_trigger;
mod kill;
mod oom;
mod rearm;
mod stall;
#[cfg(test)]
mod tests;

pub use kill::{COMING_BACK_KB, KILL_CONFIRM_MS, MAX_WATCHED_VICTIMS, VICTIM_EXIT_WAIT_MS};
pub use oom::{BACKSTOP_MS, MIN_AVAILABLE_KB, QUIET_MS, RECHECK_MS};
pub use rearm::REARM_RETRY_MS;
pub use stall::{CALM_STALL_LOG_MS, STALL_GAP_MIN_MS};

use crate::flag::Victim;
use crate::log::Level;
use crate::module_status::ModuleStatus;
use crate::params::Params;
pub use crate::runtime::Counters;
use crate::runtime::Mode;

/// A stall counts as OOM (trigger, release, kill) only while MemAvailable
/// is below this share of MemTotal. After the hog is killed the stall can
/// go on for seconds while evicted code is read back in; a kill then would
/// only hit innocent processes (docs/stall.md).
pub const MEMORY_SHORT_PCT: u64 = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The PSI trigger fired: memory stall above the threshold in a window.
    Psi,
    /// The kernel's OOM killer killed a process (from the kernel log), or
    /// the `oom_kill` counter in /proc/vmstat rose (no victim known).
    OomKill(Option<Victim>),
    /// A memory cgroup's OOM killer killed a process (the kernel log's
    /// `Memory cgroup out of memory: Killed process`): a cgroup at its
    /// `memory.max` (`MemoryMax=`), however much memory the machine has.
    /// Counted; no evidence of a system OOM.
    MemcgKill(MemcgKill),
    /// The outcome of [`Action::Kill`]: the processes oom_ext killed itself
    /// (none: it wrote sysrq `f`, or a dry run).
    Killed(Vec<Victim>),
    /// The module's status changed.
    Module(ModuleStatus),
    /// The deadline from [`Machine::next_deadline`] was reached.
    Timer,
    /// A victim the loop watched ([`Action::WatchExit`]) has exited, or
    /// cannot be watched.
    VictimExited(u32),
    /// The outcome of [`Action::ArmBuffer`]: the buffer is held again.
    Armed(bool),
    /// The outcome of [`Action::ReplaceBuffer`].
    BufferReplaced(bool),
    /// The outcome of [`Action::Trigger`]: `Err` holds why the write failed.
    Triggered(Result<(), String>),
    /// New parameters (SIGHUP).
    Reload(Params),
}

/// A process killed at a memory cgroup's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemcgKill {
    pub victim: Victim,
    /// The cgroup whose limit it was (`oom_memcg=` of the kernel's summary
    /// line, when that line named this victim; it is rate-limited).
    pub memcg: Option<String>,
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
    /// PSI memory `full` total, µs (read only with `harm=1`).
    pub psi_full_us: Option<u64>,
    /// SwapFree from /proc/meminfo, if readable.
    pub swap_free_kb: Option<u64>,
    /// Written to swap since boot, kB (`pswpout` in /proc/vmstat), if
    /// readable.
    pub swap_out_kb: Option<u64>,
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
    /// Allocate and lock the buffer again (`bufsize`); the loop answers
    /// with [`Event::Armed`].
    ArmBuffer,
    /// Drop the buffer and reserve one of the new `bufsize`; the loop
    /// answers with [`Event::BufferReplaced`].
    ReplaceBuffer,
    CreateFlag(&'static str),
    AppendFlag(String),
    RemoveFlag,
    /// Kernel mode: the OOM state is over; victim lines still waiting for
    /// the module's flag are dropped.
    DropPendingLines,
    /// Write `1` to the module's trigger; the loop answers with
    /// [`Event::Triggered`].
    Trigger,
    /// Kill a process to end the stall: the executor chooses it by the
    /// policy (src/policy/, docs/policy.md), or writes sysrq `f` (the
    /// kernel's OOM killer picks) when it finds no one; it answers with
    /// [`Event::Killed`].
    Kill,
    /// Bring oom_score_adj in line with the policy's rules (a stall began).
    AlignScores,
    /// `policy=panic`: the flag's writes flushed, then a kernel panic
    /// (sysrq `c`; the box reboots after `kernel.panic` s).
    Panic,
    /// Report [`Event::VictimExited`] when this process has exited.
    WatchExit(u32),
    /// Stop watching this process (too many watched).
    Unwatch(u32),
    /// The PSI parameters changed: open the trigger again.
    ReopenPsi,
    /// Kernel mode, SIGHUP: a module key changed in the params file; write
    /// `vm.oom_ext.KEY` (the module owns the value).
    SetSysctl(&'static str, String),
    /// sync, then reboot.
    Reboot,
    /// Counters changed: rewrite /run/oom-ext/guard.state.
    WriteState,
}

#[derive(Debug, Clone)]
pub struct Machine {
    mode: Mode,
    params: Params,
    buffer_armed: bool,
    /// Fallback mode's own OOM state.
    oom: Option<oom::Oom>,
    stall: Option<stall::Stall>,
    calm_stall_logged_ms: Option<u64>,
    rearm_at: Option<u64>,
    module_state: Option<String>,
    counters: Counters,
    /// Set from a kill until its victims have exited.
    awaiting: Option<kill::Awaiting>,
    pending_kill: Option<kill::PendingKill>,
    /// Pids the loop watches for us ([`Action::WatchExit`]), oldest first.
    watched: Vec<u32>,
    /// Kernel mode: victim lines may wait in the writer for the flag.
    module_lines_sent: bool,
    trigger_failed: bool,
    rebooting: bool,
    /// With `harm=1`: the trigger model of issue 16.
    harm: Option<crate::guard::harm::Model>,
    /// Kernel mode, harm: the last trigger write.
    harm_trigger_ms: Option<u64>,
    /// Harm: the last sample logged (once per TRACE_MS while an episode lasts).
    harm_logged_ms: Option<u64>,
}

/// Whether [`Machine::on_timer`] goes on to the next concern.
#[derive(PartialEq, Eq)]
enum Flow {
    Next,
    Stop,
}

impl Machine {
    pub fn new(mode: Mode, params: Params, buffer_armed: bool) -> Self {
        let harm = Self::harm_model(&params);
        Machine {
            mode,
            params,
            buffer_armed,
            oom: None,
            stall: None,
            calm_stall_logged_ms: None,
            rearm_at: None,
            module_state: None,
            counters: Counters::default(),
            awaiting: None,
            pending_kill: None,
            watched: Vec::new(),
            module_lines_sent: false,
            trigger_failed: false,
            rebooting: false,
            harm,
            harm_trigger_ms: None,
            harm_logged_ms: None,
        }
    }

    /// The buffer could not be reserved at start: try again at `at_ms`.
    pub fn with_rearm_at(mut self, at_ms: u64) -> Self {
        self.rearm_at = Some(at_ms);
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The module's state as last read (kernel mode).
    pub fn module_state(&self) -> Option<&str> {
        self.module_state.as_deref()
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

    /// The earliest deadline of any concern.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.rebooting {
            return None;
        }
        [
            if self.harm.is_some() {
                self.harm_deadline()
            } else {
                self.stall_deadline()
            },
            self.kill_deadline(),
            self.oom_deadline(),
            self.rearm_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle(&mut self, ev: Event, f: Facts) -> Vec<Action> {
        let mut out = Vec::new();
        if self.rebooting {
            return out;
        }
        match ev {
            Event::Psi if self.harm.is_some() => self.harm_on_psi(f, &mut out),
            Event::Psi => self.on_psi(f, &mut out),
            Event::OomKill(v) => self.on_kill(v, f, &mut out),
            Event::MemcgKill(k) => self.on_memcg_kill(k, &mut out),
            Event::Killed(vs) => self.on_victims(vs, f, &mut out),
            Event::Module(s) => self.on_module(s, f, &mut out),
            Event::Timer => self.on_timer(f, &mut out),
            Event::VictimExited(pid) => self.on_exit(pid, f, &mut out),
            Event::Armed(ok) => self.on_armed(ok, f, &mut out),
            Event::BufferReplaced(ok) => self.on_buffer_replaced(ok, &mut out),
            Event::Triggered(r) => self.on_triggered(r, &mut out),
            Event::Reload(p) => self.on_reload(p, &mut out),
        }
        self.drop_module_lines(&mut out);
        out
    }

    /// Each concern's deadline, in the order the concerns depend on: a
    /// stall's end clears its kill; the OOM state ends only with the stall;
    /// the re-arm waits for the OOM state's end.
    fn on_timer(&mut self, f: Facts, out: &mut Vec<Action>) {
        let kills = self.counters.kills;
        let stall = if self.harm.is_some() {
            self.harm_timer(f, out)
        } else {
            self.stall_timer(f, out)
        };
        if stall == Flow::Stop {
            return;
        }
        self.kill_timer(f, out);
        if self.counters.kills > kills {
            if let Some(m) = self.harm.as_mut() {
                m.killed(f.now_ms);
            }
        }
        self.eaten_timer(f, out);
        if self.oom_timer(f, out) == Flow::Stop {
            return;
        }
        self.rearm_timer(f, out);
    }

    fn on_triggered(&mut self, r: Result<(), String>, out: &mut Vec<Action>) {
        match r {
            Ok(()) => self.trigger_failed = false,
            // Once per failure streak: a stall writes once a second.
            Err(e) if !self.trigger_failed => {
                self.trigger_failed = true;
                out.push(Action::Log(
                    Level::Warning,
                    format!("cannot write /{}: {e}", crate::paths::MODULE_TRIGGER),
                ));
            }
            Err(_) => {}
        }
    }

    fn on_reload(&mut self, mut params: Params, out: &mut Vec<Action>) {
        if params.enabled != self.params.enabled {
            // Turning oom_ext off or on is init's decision (module load,
            // mode): not a run-time change.
            out.push(Action::Log(
                Level::Warning,
                format!(
                    "enabled={} on SIGHUP needs a restart (oom_ext=0 on the kernel command line, or stop the guard): keeping enabled={}",
                    u8::from(params.enabled),
                    u8::from(self.params.enabled)
                ),
            ));
            params.enabled = self.params.enabled;
        }
        let old = std::mem::replace(&mut self.params, params);
        if old.psi_trigger() != self.params.psi_trigger()
            || old.psi != self.params.psi
            || old.harm != self.params.harm
        {
            out.push(Action::ReopenPsi);
        }
        if self.mode == Mode::Fallback && old.bufsize != self.params.bufsize && self.buffer_armed {
            out.push(Action::ReplaceBuffer);
        }
        if self.mode == Mode::Kernel {
            // In init's order: the path before the flag switch, bufsize last.
            for key in crate::params::module_keys().rev() {
                let new = self.params.get(key).unwrap_or_default();
                if old.get(key).unwrap_or_default() != new {
                    out.push(Action::SetSysctl(key, new));
                }
            }
        }
        if Self::harm_model(&old).map(|m| m.params) != self.harm.as_ref().map(|m| m.params)
            || old.harm != self.params.harm
        {
            // Another trigger model: a stall the old one followed ends here.
            self.harm = Self::harm_model(&self.params);
            self.harm_trigger_ms = None;
            if self.stall.take().is_some() {
                self.stall_over();
            }
        }
        out.push(Action::Log(
            Level::Info,
            format!(
                "reloaded parameters (SIGHUP): {}",
                self.params.to_file().replace('\n', " ").trim_end()
            ),
        ));
        out.push(Action::WriteState);
    }

    /// Kernel mode: lines queued for the module's flag wait no longer once
    /// the module's OOM state and the stall are over.
    fn drop_module_lines(&mut self, out: &mut Vec<Action>) {
        if self.mode == Mode::Kernel {
            self.module_lines_sent |= out.iter().any(|a| matches!(a, Action::AppendFlag(_)));
        }
        if self.module_lines_sent
            && self.module_state.as_deref() != Some("oom")
            && self.stall.is_none()
        {
            self.module_lines_sent = false;
            out.push(Action::DropPendingLines);
        }
    }

    /// `policy=panic` (seed 002's oom_panic): at the first OOM the flag
    /// names the policy, then the kernel panics (module) or the guard
    /// reboots (fallback mode), so the next boot's report says why.
    fn policy_panic(&mut self, out: &mut Vec<Action>) -> bool {
        if self.params.policy != crate::params::OomPolicy::Panic {
            return false;
        }
        self.rebooting = true;
        out.push(Action::AppendFlag("policy=panic\n".into()));
        let kernel = self.mode == Mode::Kernel;
        out.push(Action::Log(
            Level::Err,
            format!(
                "oom_ext.policy=panic: the first OOM; {}",
                if kernel {
                    "syncing and panicking the kernel"
                } else {
                    "syncing and rebooting"
                }
            ),
        ));
        out.push(if kernel {
            Action::Panic
        } else {
            Action::Reboot
        });
        true
    }

    fn reboot(&mut self, why: String, out: &mut Vec<Action>) {
        self.rebooting = true;
        out.push(Action::Log(
            Level::Err,
            format!("{why}: syncing and rebooting"),
        ));
        out.push(Action::AppendFlag(
            crate::flag::GRACETIME_REBOOT_LINE.into(),
        ));
        out.push(Action::Reboot);
    }
}

fn pid_list(pids: &[u32]) -> String {
    pids.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
