//! The loop: sources → machine → effects. It hands each event with fresh
//! facts to the machine and carries out the actions it gets back; answers
//! (re-arm result, trigger write, an unwatchable victim) go back to the
//! machine as events. Signals and switch-root are the loop's own.

#![forbid(unsafe_code)]

use super::buffer::Buffer;
use super::effects::{Effects, Outcome};
use super::machine::{Action, Event, Facts, Machine, REARM_RETRY_MS};
use super::sources::{Input, Sources};
use super::{reanchor, setup};
use crate::log::Log;
use crate::params::Params;
use crate::root::Root;
use crate::runtime::{GuardState, Mode};
use crate::sys::now_ms;

pub(super) struct Guard {
    root: Root,
    machine: Machine,
    sources: Sources,
    effects: Effects,
}

impl Guard {
    pub(super) fn new(root: Root, mode: Mode, params: Params, log: &Log) -> std::io::Result<Guard> {
        let mask = setup::handled_signals();
        mask.thread_block().map_err(crate::sys::errno)?;
        let sources = Sources::open(root.clone(), mode == Mode::Kernel, &params, &mask, log)?;
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
        let held = buffer.is_some();
        let effects = Effects::new(root.clone(), buffer, &params, log);
        let mut machine = Machine::new(mode, params, held);
        if buffer_failed {
            machine = machine.with_rearm_at(now_ms() + REARM_RETRY_MS);
        }
        Ok(Guard {
            effects,
            root,
            machine,
            sources,
        })
    }

    /// The line the guard logs once it runs.
    pub(super) fn start_line(&self, resumed: bool) -> String {
        format!(
            "guard {} in {} mode (pid {}, buffer {} MiB, psi {})",
            if resumed { "resumed" } else { "running" },
            self.machine.mode().as_str(),
            std::process::id(),
            self.effects.buffer_bytes() >> 20,
            self.sources.psi_word()
        )
    }

    pub(super) fn start_writer(&mut self, log: &Log) {
        self.effects.start_writer(log);
    }

    pub(super) fn run_loop(&mut self, log: &mut Log) -> i32 {
        if let Some(s) = self.sources.read_status() {
            if let Some(code) = self.feed(vec![Event::Module(s)], log) {
                return code;
            }
        }
        loop {
            self.sources.arm_timer(self.machine.next_deadline());
            let ready = match self.sources.wait() {
                Ok(r) => r,
                Err(e) => {
                    log.err(&format!("poll failed: {}", e.desc()));
                    return 1;
                }
            };
            for (src, rev) in ready {
                let inputs = self.sources.read(src, rev, log);
                if let Some(code) = self.on_inputs(inputs, log) {
                    return code;
                }
            }
        }
    }

    fn on_inputs(&mut self, inputs: Vec<Input>, log: &mut Log) -> Option<i32> {
        let mut events = Vec::new();
        for input in inputs {
            match input {
                Input::Event(ev) => events.push(ev),
                Input::Signal(sig) if sig == libc::SIGHUP as u32 => self.reload(log),
                Input::Signal(sig) => {
                    self.effects.shutdown();
                    log.info(&format!("guard stopping on signal {sig}: buffer released"));
                    return Some(0);
                }
                Input::MountCheck(attempt) => self.check_switch(log, attempt),
                Input::Deadline => {
                    if self.machine.next_deadline().is_some_and(|d| now_ms() >= d) {
                        events.push(Event::Timer);
                    }
                }
            }
        }
        let code = self.feed(events, log);
        // Unused (no event): never let a later wake-up see it as fresh.
        self.sources.forget_readings();
        code
    }

    /// Hands events to the machine, each with fresh facts, and carries out
    /// what it answers; `Some(code)` ends the guard.
    fn feed(&mut self, events: Vec<Event>, log: &Log) -> Option<i32> {
        for ev in events {
            let f = self.sources.facts();
            let acts = self.machine.handle(ev, f);
            if let Some(code) = self.execute(acts, f, log) {
                return Some(code);
            }
        }
        None
    }

    /// Carries out actions; answers go back to the machine (with the facts
    /// of the event that caused them, at the current time).
    fn execute(&mut self, acts: Vec<Action>, f: Facts, log: &Log) -> Option<i32> {
        let mut answers = Vec::new();
        for a in acts {
            match a {
                Action::WatchExit(pid) => {
                    if !self.sources.watch_exit(pid) {
                        answers.push(Event::VictimExited(pid));
                    }
                }
                Action::Unwatch(pid) => self.sources.unwatch(pid),
                Action::ReopenPsi => self.sources.open_psi(self.machine.params()),
                Action::WriteState => self.write_state(),
                a => match self
                    .effects
                    .run(a, &self.machine, self.sources.oom_kills(), log)
                {
                    Outcome::Done => {}
                    Outcome::Answer(ev) => answers.push(ev),
                    Outcome::Exit(code) => return Some(code),
                },
            }
        }
        for ev in answers {
            let f = Facts {
                now_ms: now_ms(),
                ..f
            };
            let acts = self.machine.handle(ev, f);
            if let Some(code) = self.execute(acts, f, log) {
                return Some(code);
            }
        }
        None
    }

    /// Switch-root check after mount activity (attempt 0) or a re-check.
    fn check_switch(&mut self, log: &mut Log, attempt: u32) {
        let Some(procfd) = &self.sources.procfd else {
            return;
        };
        if reanchor::switched(procfd) {
            // The re-exec ends the writer thread: its queued writes first.
            self.effects.drain();
            reanchor::reanchor(procfd, log);
            // Only returns when no binary to re-exec was found.
            self.sources.stop_mount_checks();
            log.set_root(Root::system());
        } else {
            self.sources.recheck_mounts(attempt);
        }
    }

    /// SIGHUP: the parameters again, from the same place as at start.
    fn reload(&mut self, log: &Log) {
        // Read capped and without blocking (a FIFO there is refused, not
        // waited on); a bad value keeps the value in effect.
        let params = match crate::runtime::recorded_params_over(&self.root, self.machine.params()) {
            Some((p, problems)) => {
                for pr in problems {
                    log.warn(&format!("/{}: {pr}", crate::paths::PARAMS));
                }
                p
            }
            None => setup::load_config(&self.root, log).1,
        };
        self.effects.reload_policy(&params, log);
        let f = self.sources.facts();
        let acts = self.machine.handle(Event::Reload(params), f);
        let _ = self.execute(acts, f, log);
    }

    pub(super) fn write_state(&mut self) {
        let m = &self.machine;
        let state = GuardState {
            pid: std::process::id(),
            mode: m.mode().as_str().into(),
            state: m.state_word().into(),
            buffer_bytes: self.effects.buffer_bytes() as u64,
            counters: *m.counters(),
            psi: self.sources.psi_word().into(),
            module_state: m.module_state().unwrap_or("none").into(),
        };
        self.effects.write_state(state.to_text());
    }
}
