//! The executor: carries out the machine's actions (buffer, crash flag,
//! module trigger, the kill, reboot, state file) and reports outcomes the
//! machine asked for back as events. No decisions here.

#![forbid(unsafe_code)]

use super::buffer::Buffer;
use super::machine::{Action, Event, Machine};
use super::writer::{Files, Job, Writer};
use crate::flag::{NewFlag, Victim};
use crate::log::Log;
use crate::params::Params;
use crate::paths;
use crate::policy::act::{Chooser, Outcome as KillOutcome, Settings};
use crate::policy::kill_hooks::{self, KillHooks};
use crate::root::Root;
use crate::rootfs;
use crate::runtime::Mode;
use crate::sys::now_ms;
use std::time::Duration;

/// Reboot, re-exec and exit wait this long at most for queued writes.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// `policy=panic` in kernel mode waits this long for the module's flag
/// before the guard creates it (the module writes it asynchronously).
const SETTLE_LIMIT: Duration = Duration::from_secs(3);

/// What carrying out an action gave.
pub(super) enum Outcome {
    Done,
    /// An answer for the machine.
    Answer(Event),
    /// The guard ends with this exit code.
    Exit(i32),
}

pub(super) struct Effects {
    root: Root,
    buffer: Option<Buffer>,
    /// The file writes: done here until the loop starts the worker
    /// ([`Effects::start_writer`]), then by the worker.
    files: Option<Files>,
    writer: Option<Writer>,
    /// Who dies when the machine asks for a kill (docs/policy.md).
    chooser: Chooser,
    /// /etc/oom-ext/kill.d, run off the loop after each kill.
    kill_hooks: KillHooks,
}

/// The policy's settings from the parameters.
fn policy_settings(p: &Params) -> Settings {
    Settings {
        dry_run: p.dry_run,
        kill_scope: p.kill_scope,
        parent_max: p.parent_max,
        parent_expire_s: p.parent_expire,
    }
}

impl Effects {
    pub(super) fn new(root: Root, buffer: Option<Buffer>, params: &Params, log: &Log) -> Effects {
        Effects {
            files: Some(Files::new(root.clone(), log.clone())),
            chooser: Chooser::new(&root, policy_settings(params), log),
            kill_hooks: KillHooks::new(root.clone(), log.clone(), kill_hooks::TIMEOUT),
            root,
            buffer,
            writer: None,
        }
    }

    /// SIGHUP: the policy files and settings again.
    pub(super) fn reload_policy(&mut self, params: &Params, log: &Log) {
        self.chooser.reload(policy_settings(params), log);
    }

    pub(super) fn buffer_bytes(&self) -> usize {
        self.buffer.as_ref().map_or(0, |b| b.len())
    }

    /// Carries out one action. `m` is read for the parameters and counters
    /// the action needs; `oom_calls` is vmstat's `oom_kill` count.
    pub(super) fn run(&mut self, a: Action, m: &Machine, oom_calls: u64, log: &Log) -> Outcome {
        let params = m.params();
        match a {
            Action::Log(level, msg) => log.log(level, &msg),
            Action::ReleaseBuffer => self.buffer = None,
            Action::ArmBuffer => {
                let r = Buffer::reserve(params.bufsize);
                let ok = matches!(r, Ok(Some(_)));
                if let Err(e) = &r {
                    log.warn(&format!("re-arm failed: {e}"));
                }
                self.buffer = r.ok().flatten();
                return Outcome::Answer(Event::Armed(ok));
            }
            Action::ReplaceBuffer => {
                self.buffer = None;
                match Buffer::reserve(params.bufsize) {
                    Ok(b) => self.buffer = b,
                    Err(e) => log.warn(&format!("cannot reserve {} MiB: {e}", params.bufsize)),
                }
                return Outcome::Answer(Event::BufferReplaced(self.buffer.is_some()));
            }
            Action::CreateFlag(source) => {
                let content = self.new_flag(source, m, oom_calls).serialize();
                self.submit(Job::Create {
                    flag: params.crashflag_name.clone(),
                    content,
                });
            }
            Action::AppendFlag(line) => {
                let kernel = m.mode() == Mode::Kernel;
                self.submit(Job::Append {
                    line,
                    module_flag: kernel.then(|| params.crashflag_name.clone()),
                });
            }
            Action::RemoveFlag => self.submit(Job::RemoveOurs),
            Action::DropPendingLines => self.submit(Job::DropPending),
            Action::Trigger => {
                let r = rootfs::write_existing(&self.root, paths::MODULE_TRIGGER, b"1");
                return Outcome::Answer(Event::Triggered(r.map_err(|e| e.to_string())));
            }
            Action::Kill => return Outcome::Answer(Event::Killed(self.kill(log))),
            Action::SetSysctl(key, value) => {
                let name = format!("vm.oom_ext.{key}");
                match crate::sysctl::write(&self.root, &name, &value) {
                    Ok(()) => log.info(&format!("SIGHUP: {name}={value}")),
                    Err(e) => log.warn(&format!(
                        "SIGHUP: cannot set {name}={value}: {e}; the module keeps its value"
                    )),
                }
            }
            Action::AlignScores => self.chooser.align(log),
            Action::Reboot => return Outcome::Exit(self.reboot(log)),
            Action::Panic => return Outcome::Exit(self.panic(m, oom_calls, log)),
            // The loop's own (sources, state file).
            Action::WatchExit(_) | Action::Unwatch(_) | Action::ReopenPsi | Action::WriteState => {}
        }
        Outcome::Done
    }

    /// The kill step: the policy's choice; sysrq `f` (the kernel's OOM
    /// killer picks, honouring oom_score_adj) when it found no one or its
    /// kill failed. The victims killed here, for the machine to await.
    fn kill(&mut self, log: &Log) -> Vec<Victim> {
        match self.chooser.kill(now_ms(), log) {
            KillOutcome::Killed(v, events) => {
                self.kill_hooks.send(events);
                return v;
            }
            KillOutcome::DryRun => {}
            KillOutcome::Fallback => {
                log.warn("falling back to sysrq f: the kernel's OOM killer picks the victim");
                if let Err(e) = rootfs::write_existing(&self.root, paths::SYSRQ, b"f") {
                    log.warn(&format!("cannot write f to /{}: {e}", paths::SYSRQ));
                }
            }
        }
        Vec::new()
    }

    fn new_flag(&self, source: &str, m: &Machine, oom_calls: u64) -> NewFlag {
        let read = |p: &str| {
            rootfs::read_small(&self.root, p)
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        NewFlag {
            source: source.to_string(),
            started_unix: crate::log::unix_now(),
            started_boot_s: now_ms() / 1000,
            kernel: read(paths::OSRELEASE),
            boot_id: read(paths::BOOT_ID),
            oom_events: m.counters().oom_events,
            oom_calls,
        }
    }

    /// Starts the writer thread; without it (it could not start) the loop
    /// does its writes itself, as before the loop began.
    pub(super) fn start_writer(&mut self, log: &Log) {
        let Some(files) = self.files.take() else {
            return;
        };
        match Writer::spawn(files) {
            Ok(w) => self.writer = Some(w),
            Err(e) => {
                log.warn(&format!(
                    "cannot start the writer thread: {e}; the event loop writes the crash flag itself"
                ));
                self.files = Some(Files::new(self.root.clone(), log.clone()));
            }
        }
    }

    fn submit(&mut self, job: Job) {
        match (&self.writer, self.files.as_mut()) {
            (Some(w), _) => w.send(job),
            (None, Some(f)) => f.run(job),
            (None, None) => {}
        }
    }

    /// Rewrites /run/oom-ext/guard.state.
    pub(super) fn write_state(&mut self, text: String) {
        self.submit(Job::State(text));
    }

    /// Waits (bounded) for the writes queued so far.
    pub(super) fn drain(&self) {
        if let Some(w) = &self.writer {
            w.drain(DRAIN_LIMIT);
        }
    }

    /// A clean stop: buffer released, no flag left behind, pid and state
    /// files removed.
    pub(super) fn shutdown(&mut self) {
        self.buffer = None;
        // A clean stop is not a hang: do not leave a flag behind to be
        // reported on the next boot.
        self.submit(Job::RemoveOurs);
        self.drain();
        super::setup::remove_pidfile(&self.root);
        let _ = rootfs::remove(&self.root, paths::GUARD_STATE);
    }

    /// `policy=panic`: the flag on disk, then sysrq `c` (a kernel panic,
    /// which reboots after kernel.panic s); a reboot if that fails.
    fn panic(&mut self, m: &Machine, oom_calls: u64, log: &Log) -> i32 {
        let params = m.params();
        if m.mode() == Mode::Kernel && params.crashflag {
            // The policy's line waits for the module's flag: bounded.
            let content = self.new_flag("panic", m, oom_calls).serialize();
            self.submit(Job::Settle {
                flag: params.crashflag_name.clone(),
                content,
                limit: SETTLE_LIMIT,
            });
        }
        self.drain();
        nix::unistd::sync();
        panic_must_reboot(&self.root, log);
        if !self.root.is_system() {
            let _ = rootfs::replace(&self.root, "run/oom-ext/panic-requested", b"1\n", 0o644);
            log.err("panic requested (fake root: not panicking)");
            return 0;
        }
        if let Err(e) = rootfs::write_existing(&self.root, paths::SYSRQ, b"c") {
            log.err(&format!(
                "cannot write c to /{}: {e}; rebooting instead",
                paths::SYSRQ
            ));
        }
        self.reboot(log)
    }

    fn reboot(&mut self, log: &Log) -> i32 {
        // gracetime_reboot=1 must be in the flag before the sync.
        self.drain();
        nix::unistd::sync();
        if !self.root.is_system() {
            // Against a fake root, record the decision instead of rebooting this machine.
            let _ = rootfs::replace(&self.root, "run/oom-ext/reboot-requested", b"1\n", 0o644);
            log.err("reboot requested (fake root: not rebooting)");
            return 0;
        }
        let r = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
        log.err(&format!("reboot failed: {r:?}"));
        1
    }
}

/// A panic with `kernel.panic=0` halts the machine for good. init sets it
/// when `policy=panic` is on the command line; a SIGHUP that turned the
/// policy on later did not, so the panic itself makes sure.
fn panic_must_reboot(root: &Root, log: &Log) {
    let now = crate::sysctl::read(root, "kernel.panic").ok();
    if now.as_deref().and_then(crate::sysctl::parse_int) != Some(0) {
        return;
    }
    let s = crate::init::PANIC_REBOOT_S.to_string();
    match crate::sysctl::write(root, "kernel.panic", &s) {
        Ok(()) => log.notice(&format!(
            "oom_ext.policy=panic needs a reboot after panic: set kernel.panic={s} (was 0)"
        )),
        Err(e) => log.warn(&format!(
            "kernel.panic=0 and it cannot be set ({e}): the panic will halt, not reboot"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Sink;

    #[test]
    fn a_panic_sets_kernel_panic_when_it_would_halt_and_leaves_it_otherwise() {
        let dir =
            std::env::temp_dir().join(format!("oom-ext-effects-panic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("proc/sys/kernel")).unwrap();
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        std::fs::write(dir.join("dev/kmsg"), "").unwrap();
        let root = Root::new(dir.clone());
        let log = Log::new(root.clone(), Sink::Kmsg);
        let panic = dir.join("proc/sys/kernel/panic");
        std::fs::write(&panic, "0\n").unwrap();
        panic_must_reboot(&root, &log);
        let want = format!("{}\n", crate::init::PANIC_REBOOT_S);
        assert_eq!(std::fs::read_to_string(&panic).unwrap(), want);
        let logged = std::fs::read_to_string(dir.join("dev/kmsg")).unwrap();
        assert!(logged.contains("set kernel.panic="), "{logged}");
        std::fs::write(&panic, "-1\n").unwrap();
        panic_must_reboot(&root, &log);
        assert_eq!(std::fs::read_to_string(&panic).unwrap(), "-1\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
