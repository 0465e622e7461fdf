//! The stall concern: when PSI events make one stall, when it is over, and
//! when a stall hidden by the buffer's release still goes on. This is the
//! trigger model; what a stall leads to (trigger, OOM state, kill) is asked
//! of the other concerns.

#![forbid(unsafe_code)]

use super::{Action, Facts, Flow, Machine};
use crate::log::Level;
use crate::runtime::Mode;

/// Stall events less than this far apart (and at least two PSI windows)
/// are one stall; only events while memory is short count (why this long:
/// docs/stall.md).
pub const STALL_GAP_MIN_MS: u64 = 10_000;
/// A stall with memory to spare is logged at most this often.
pub const CALM_STALL_LOG_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stall {
    pub(super) start_ms: u64,
    pub(super) last_ms: u64,
    pub(super) last_kill_ms: Option<u64>,
    /// MemAvailable at the first event.
    pub(super) avail_start_kb: Option<u64>,
    /// What this stall's buffer release gave back (0: nothing released).
    pub(super) released_kb: u64,
    /// Next check whether the released buffer has been eaten.
    pub(super) eaten_check_ms: Option<u64>,
}

impl Machine {
    pub(super) fn stall_gap_ms(&self) -> u64 {
        (2 * u64::from(self.params.psi_window_ms)).max(STALL_GAP_MIN_MS)
    }

    pub(super) fn stall_deadline(&self) -> Option<u64> {
        let s = self.stall?;
        let mut d = s.last_ms + self.stall_gap_ms() + 1;
        if let Some(e) = s.eaten_check_ms {
            d = d.min(e);
        }
        if let Some(b) = self.backstop_ms(s.start_ms) {
            d = d.min(b);
        }
        Some(d)
    }

    pub(super) fn on_psi(&mut self, f: Facts, out: &mut Vec<Action>) {
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
        let begins = !matches!(self.stall, Some(s) if now.saturating_sub(s.last_ms) <= gap);
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
            _ => self.oom_evidence(now, "psi", f, out),
        }
        self.maybe_kill(f, None, out);
        if begins {
            // Pressure begins: the kernel's own kills should lean the
            // policy's way from now on (processes started since the last
            // alignment included). After the trigger: the buffer first.
            out.push(Action::AlignScores);
        }
        out.push(Action::WriteState);
    }

    /// Whether the OOM state this stall starts frees a buffer (the module's
    /// in kernel mode, ours in fallback mode).
    pub(super) fn releases_buffer_now(&self) -> bool {
        self.params.bufsize > 0
            && match self.mode {
                Mode::Kernel => self.module_state.as_deref() == Some("armed"),
                _ => self.oom.is_none() && self.buffer_armed,
            }
    }

    /// The stall is over after a gap without events; in kernel mode a stall
    /// that outlasts gracetime by BACKSTOP_MS (the module did not panic)
    /// reboots.
    pub(super) fn stall_timer(&mut self, f: Facts, out: &mut Vec<Action>) -> Flow {
        let now = f.now_ms;
        let Some(s) = self.stall else {
            return Flow::Next;
        };
        if now > s.last_ms + self.stall_gap_ms() {
            self.stall = None;
            // Memory is back: a victim still on its way out holds back no
            // kill in a later stall.
            self.stall_over();
            out.push(Action::Log(
                Level::Info,
                format!(
                    "memory stall over after {} ms",
                    s.last_ms.saturating_sub(s.start_ms)
                ),
            ));
        } else if self.stall_backstop(now, out) {
            return Flow::Stop;
        }
        Flow::Next
    }

    /// While the buffer's release hides a stall, no PSI event comes to say
    /// it goes on (docs/stall.md: 5 s without one while a leaker ate the
    /// buffer). Once half the released memory is gone again and memory is
    /// still short, the stall counts as going on.
    pub(super) fn eaten_timer(&mut self, f: Facts, out: &mut Vec<Action>) {
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
                st.eaten_check_ms = Some(f.now_ms + super::RECHECK_MS);
            }
        }
    }
}
