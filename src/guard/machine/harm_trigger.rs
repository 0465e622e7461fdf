//! The harm concern: with `harm=1` it takes the stall concern's place as
//! the trigger model. A PSI event starts an episode of the harm model
//! (`guard::harm`, docs/stall.md); while it lasts the model is sampled
//! every 100 ms and says when to release the buffer (enter the OOM state)
//! and when to kill. The episode is this concern's stall: the OOM state
//! waits for its end as for any stall. What a kill leads to (confirmation,
//! victims awaited) stays the kill concern's.

#![forbid(unsafe_code)]

use super::stall::Stall;
use super::{Action, Facts, Flow, Machine};
use crate::guard::harm::{HarmParams, Model, Response, Sample};
use crate::log::Level;
use crate::runtime::Mode;

/// While harm lasts, the module's trigger is written again at most this
/// often (it is the module's OOM evidence, as the PSI events are).
pub const EVIDENCE_MS: u64 = 1000;
/// While an episode lasts, what the model measured is logged this often:
/// the journal then says why it acted or did not (a VM run of the thrash
/// that was never killed could not say).
pub const TRACE_MS: u64 = 1000;

impl Machine {
    pub(super) fn harm_model(params: &crate::params::Params) -> Option<Model> {
        params
            .harm
            .then(|| Model::new(HarmParams::from_params(params)))
    }

    pub(super) fn harm_on_psi(&mut self, f: Facts, out: &mut Vec<Action>) {
        let now = f.now_ms;
        self.counters.stall_events += 1;
        let can_release = self.releases_buffer_now();
        let Some(model) = self.harm.as_mut() else {
            return;
        };
        let new = !model.in_episode();
        model.pressure(now, can_release);
        match self.stall.as_mut() {
            Some(s) => s.last_ms = s.last_ms.max(now),
            None => {
                self.stall = Some(Stall {
                    start_ms: now,
                    last_ms: now,
                    last_kill_ms: None,
                    avail_start_kb: f.mem_available_kb,
                    released_kb: 0,
                    eaten_check_ms: None,
                })
            }
        }
        if new {
            out.push(Action::Log(
                Level::Info,
                format!(
                    "memory pressure (over {} ms of stall within {} ms): watching for harm",
                    self.params.psi_stall_ms, self.params.psi_window_ms
                ),
            ));
            out.push(Action::WriteState);
        }
    }

    pub(super) fn harm_deadline(&self) -> Option<u64> {
        let next = self.harm.as_ref()?.next_sample_ms();
        let backstop = self.stall.and_then(|s| self.backstop_ms(s.start_ms));
        [next, backstop].into_iter().flatten().min()
    }

    /// One sample when it is due; the episode's end ends the stall.
    pub(super) fn harm_timer(&mut self, f: Facts, out: &mut Vec<Action>) -> Flow {
        let now = f.now_ms;
        if self.stall_backstop(now, out) {
            return Flow::Stop;
        }
        let Some(model) = self.harm.as_mut() else {
            return Flow::Next;
        };
        if model.next_sample_ms().map_or(true, |due| now < due) {
            return Flow::Next;
        }
        let (Some(avail_kb), Some(total_kb)) = (f.mem_available_kb, f.mem_total_kb) else {
            // Nothing to judge by: the episode ends; the next event starts one.
            *model = Model::new(model.params);
            self.end_harm_stall(now, out);
            return Flow::Next;
        };
        let d = model.sample(Sample {
            now_ms: now,
            full_us: f.psi_full_us.unwrap_or(0),
            avail_kb,
            swap_free_kb: f.swap_free_kb.unwrap_or(0),
            swap_out_kb: f.swap_out_kb.unwrap_or(0),
            total_kb,
        });
        let ended = !model.in_episode();
        if d.harm.is_some() {
            if let Some(s) = self.stall.as_mut() {
                s.last_ms = now;
            }
        }
        if d.response.is_none()
            && d.measures.is_some()
            && self.harm_logged_ms.map_or(true, |t| now >= t + TRACE_MS)
        {
            self.harm_logged_ms = Some(now);
            out.push(Action::Log(Level::Info, format!("harm model: {}", d.why())));
        }
        match d.response {
            Some(Response::Release) => {
                out.push(Action::Log(
                    Level::Warning,
                    format!("{}: treating it as OOM", d.why()),
                ));
                self.harm_evidence(now, f, out);
                out.push(Action::WriteState);
            }
            Some(Response::Kill) if self.params.psi_kill_ms > 0 => {
                self.harm_evidence(now, f, out);
                self.request_kill(f, d.why(), out);
            }
            _ if d.harm.is_some() => self.harm_evidence(now, f, out),
            _ => {}
        }
        if ended {
            self.end_harm_stall(now, out);
        }
        Flow::Next
    }

    /// Harm is OOM evidence: the module's trigger (kernel mode, at most
    /// once per EVIDENCE_MS) or the guard's own OOM state.
    fn harm_evidence(&mut self, now: u64, f: Facts, out: &mut Vec<Action>) {
        match self.mode {
            Mode::Kernel => {
                if self
                    .harm_trigger_ms
                    .map_or(true, |t| now >= t + EVIDENCE_MS)
                {
                    self.harm_trigger_ms = Some(now);
                    out.push(Action::Trigger);
                }
            }
            _ => self.oom_evidence(now, "psi", f, out),
        }
    }

    fn end_harm_stall(&mut self, now: u64, out: &mut Vec<Action>) {
        self.harm_trigger_ms = None;
        self.harm_logged_ms = None;
        if let Some(s) = self.stall.take() {
            self.stall_over();
            out.push(Action::Log(
                Level::Info,
                format!(
                    "memory pressure over after {} ms",
                    now.saturating_sub(s.start_ms)
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Action, Event, Facts, Machine};
    use crate::params::Params;
    use crate::runtime::Mode;

    fn harm() -> Params {
        Params {
            harm: true,
            ..Params::default()
        }
    }

    /// Drives the machine every 10 ms up to `until_ms`: a PSI event at each
    /// of `psi`, the timer when its deadline is due; `shape(t)` gives the
    /// PSI full share (%) and MemAvailable (MiB of 1 GiB) at t.
    fn drive(
        m: &mut Machine,
        psi: &[u64],
        until_ms: u64,
        shape: impl Fn(u64) -> (u64, u64),
    ) -> Vec<(u64, Action)> {
        let mut out = Vec::new();
        let mut full_us = 0;
        for t in (0..=until_ms).step_by(10) {
            full_us += shape(t).0 * 100;
            let f = Facts {
                now_ms: t,
                mem_available_kb: Some(shape(t).1 * 1024),
                mem_total_kb: Some(1024 * 1024),
                net_freed_kb: Some(0),
                psi_full_us: Some(full_us),
                swap_free_kb: Some(0),
                swap_out_kb: Some(0),
            };
            if psi.contains(&t) {
                out.extend(m.handle(Event::Psi, f).into_iter().map(|a| (t, a)));
            }
            // The loop arms an absolute timerfd with the deadline: 0
            // would disarm it.
            assert_ne!(m.next_deadline(), Some(0), "at {t} ms");
            if m.next_deadline().is_some_and(|d| d <= t) {
                out.extend(m.handle(Event::Timer, f).into_iter().map(|a| (t, a)));
            }
        }
        out
    }

    fn first(a: &[(u64, Action)], want: &Action) -> Option<u64> {
        a.iter().find(|(_, x)| x == want).map(|(t, _)| *t)
    }

    fn log_has(a: &[(u64, Action)], text: &str) -> bool {
        a.iter()
            .any(|(_, x)| matches!(x, Action::Log(_, l) if l.contains(text)))
    }

    #[test]
    fn a_freeze_is_released_then_killed_and_the_event_alone_does_nothing() {
        let mut m = Machine::new(Mode::Kernel, harm(), false);
        m.handle(
            Event::Module(crate::module_status::ModuleStatus {
                state: Some("armed".into()),
                ..Default::default()
            }),
            Facts::default(),
        );
        let psi: Vec<u64> = (0..6).map(|i| i * 1000).collect();
        let a = drive(&mut m, &psi, 6000, |_| (80, 50));
        let trigger = first(&a, &Action::Trigger).expect("a trigger");
        let kill = first(&a, &Action::Kill).expect("a kill");
        assert!(trigger >= 500, "{a:?}");
        assert!(kill >= trigger + 1000 && kill <= trigger + 1500, "{a:?}");
        assert!(log_has(&a, "memory freeze: freeze 80.0%"), "{a:?}");
    }

    #[test]
    fn a_near_miss_plateau_is_left_alone_and_the_guard_goes_quiet() {
        let mut m = Machine::new(Mode::Fallback, harm(), true);
        let psi: Vec<u64> = (0..6).map(|i| i * 1000).collect();
        let a = drive(&mut m, &psi, 15_000, |_| (5, 60));
        assert_eq!(first(&a, &Action::Kill), None, "{a:?}");
        assert_eq!(first(&a, &Action::ReleaseBuffer), None, "{a:?}");
        assert!(log_has(&a, "memory pressure over after"), "{a:?}");
        // Calm again: no deadline, no wake-up.
        assert_eq!(m.next_deadline(), None);
    }

    #[test]
    fn an_episode_logs_what_the_model_measured_once_a_second() {
        let mut m = Machine::new(Mode::Fallback, harm(), true);
        let psi: Vec<u64> = (0..6).map(|i| i * 1000).collect();
        let a = drive(&mut m, &psi, 10_000, |_| (5, 60));
        let lines: Vec<u64> = a
            .iter()
            .filter(|(_, x)| matches!(x, Action::Log(_, l) if l.starts_with("harm model: no harm: freeze 5.0%")))
            .map(|(t, _)| *t)
            .collect();
        assert!(lines.len() >= 8, "{a:?}");
        assert!(lines.windows(2).all(|w| w[1] - w[0] >= 1000), "{lines:?}");
    }

    #[test]
    fn fallback_mode_releases_its_own_buffer_first() {
        let mut m = Machine::new(Mode::Fallback, harm(), true);
        let a = drive(&mut m, &[0, 1000, 2000], 3000, |_| (80, 50));
        let release = first(&a, &Action::ReleaseBuffer).expect("a release");
        let kill = first(&a, &Action::Kill).expect("a kill");
        assert!(release < kill, "{a:?}");
    }

    #[test]
    fn psi_kill_ms_0_still_means_never_kill() {
        let p = Params {
            psi_kill_ms: 0,
            ..harm()
        };
        let mut m = Machine::new(Mode::Fallback, p, true);
        let a = drive(&mut m, &[0, 1000, 2000, 3000], 5000, |_| (80, 10));
        assert_eq!(first(&a, &Action::Kill), None, "{a:?}");
        assert!(first(&a, &Action::ReleaseBuffer).is_some(), "{a:?}");
    }

    #[test]
    fn harm_0_keeps_the_old_trigger_the_psi_event_triggers_at_once() {
        let p = Params {
            harm: false,
            ..Params::default()
        };
        let mut m = Machine::new(Mode::Kernel, p, false);
        let a = drive(&mut m, &[0], 100, |_| (80, 50));
        assert_eq!(first(&a, &Action::Trigger), Some(0), "{a:?}");
    }
}
