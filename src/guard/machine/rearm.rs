//! The re-arm concern (fallback mode): `resettime` after the OOM state the
//! buffer is reserved again, when memory allows.

#![forbid(unsafe_code)]

use super::{Action, Facts, Machine};
use crate::log::Level;

/// Retry interval for re-arming when memory is short.
pub const REARM_RETRY_MS: u64 = 30_000;

impl Machine {
    pub(super) fn rearm_deadline(&self) -> Option<u64> {
        self.rearm_at
    }

    /// The OOM state ended at `now`: re-arm after resettime.
    pub(super) fn oom_over(&mut self, now: u64) {
        if self.params.bufsize > 0 {
            self.rearm_at = Some(now + u64::from(self.params.resettime) * 1000);
        }
    }

    pub(super) fn rearm_timer(&mut self, f: Facts, out: &mut Vec<Action>) {
        let now = f.now_ms;
        let Some(r) = self.rearm_at else { return };
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

    /// The loop's answer to [`Action::ArmBuffer`].
    pub(super) fn on_armed(&mut self, ok: bool, f: Facts, out: &mut Vec<Action>) {
        if ok {
            self.buffer_armed = true;
            self.rearm_at = None;
            self.counters.rearms += 1;
            out.push(Action::Log(
                Level::Info,
                format!("re-armed the {} MiB buffer", self.params.bufsize),
            ));
            out.push(Action::WriteState);
        } else {
            self.rearm_at = Some(f.now_ms + REARM_RETRY_MS);
            out.push(Action::Log(
                Level::Warning,
                "cannot re-arm the buffer now; retrying in 30 s".into(),
            ));
        }
    }

    /// The loop's answer to [`Action::ReplaceBuffer`] (SIGHUP, new bufsize).
    pub(super) fn on_buffer_replaced(&mut self, ok: bool, out: &mut Vec<Action>) {
        if self.buffer_armed != ok {
            self.buffer_armed = ok;
            out.push(Action::WriteState);
        }
    }
}
