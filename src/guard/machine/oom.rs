//! The OOM-state concern: fallback mode's own OOM state (entered on
//! evidence, ended after a quiet spell with memory back; the buffer and the
//! crash flag follow it), the module's state in kernel mode, gracetime.

#![forbid(unsafe_code)]

use super::{Action, Facts, Flow, Machine};
use crate::log::Level;
use crate::module_status::ModuleStatus;

/// No OOM evidence for this long (and enough memory) ends the OOM state,
/// as the module defines it.
pub const QUIET_MS: u64 = 5000;
/// Re-check interval while the OOM state waits for memory to come back.
pub const RECHECK_MS: u64 = 1000;
/// In kernel mode the module panics at gracetime; the guard reboots itself
/// only if the stall outlasts gracetime by this much (the module did not).
pub const BACKSTOP_MS: u64 = 5000;
/// OOM state ends only with at least this much available (or bufsize).
pub const MIN_AVAILABLE_KB: u64 = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Oom {
    pub(super) start_ms: u64,
    pub(super) last_evidence_ms: u64,
    /// Earliest next end check (pushed out while memory is short).
    pub(super) check_ms: u64,
}

impl Machine {
    pub(super) fn oom_deadline(&self) -> Option<u64> {
        let o = self.oom?;
        let end = o.check_ms.max(o.last_evidence_ms + QUIET_MS);
        Some(match self.params.gracetime {
            0 => end,
            g => end.min(o.start_ms + u64::from(g) * 1000),
        })
    }

    /// OOM evidence in fallback mode: enter or extend the OOM state.
    pub(super) fn oom_evidence(
        &mut self,
        now: u64,
        source: &'static str,
        f: Facts,
        out: &mut Vec<Action>,
    ) {
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
                out.push(Action::AppendFlag(crate::flag::mem_available_line(kb)));
            }
            if self.counters.memcg_kills > 0 {
                out.push(self.memcg_kills_line());
            }
        }
        out.push(Action::WriteState);
        self.policy_panic(out);
    }

    /// Gracetime reached: reboot. Else the end check: quiet long enough,
    /// no stall, memory back.
    pub(super) fn oom_timer(&mut self, f: Facts, out: &mut Vec<Action>) -> Flow {
        let now = f.now_ms;
        let grace_ms = u64::from(self.params.gracetime) * 1000;
        let Some(mut o) = self.oom else {
            return Flow::Next;
        };
        if grace_ms > 0 && now >= o.start_ms + grace_ms {
            self.reboot(
                format!(
                    "OOM state has lasted {} s (gracetime {} s)",
                    (now - o.start_ms) / 1000,
                    self.params.gracetime
                ),
                out,
            );
            return Flow::Stop;
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
                    self.oom_over(now);
                    out.push(Action::WriteState);
                }
                _ => {
                    o.check_ms = now + RECHECK_MS;
                    self.oom = Some(o);
                }
            }
        }
        Flow::Next
    }

    /// Kernel mode: the module owns the OOM state; its changes are logged.
    pub(super) fn on_module(&mut self, s: ModuleStatus, f: Facts, out: &mut Vec<Action>) {
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
            self.module_state = new;
            out.push(Action::WriteState);
            if newv == "oom" {
                if let Some(kb) = f.mem_available_kb {
                    out.push(Action::AppendFlag(crate::flag::mem_available_line(kb)));
                }
                if self.counters.memcg_kills > 0 {
                    out.push(self.memcg_kills_line());
                }
                self.policy_panic(out);
            }
        }
    }
}
