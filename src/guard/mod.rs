//! `oom-ext guard`: the helper that lives on from the initramfs into the real
//! root. One poll(2) loop over event sources; no periodic wake-up: the timer
//! is armed only while a deadline (stall end, OOM end, re-arm, gracetime) is
//! pending.
//!
//! - [`setup`]: the process (lock, pid files, mlockall, SCHED_RR, daemonize);
//! - [`sources`]: what the loop polls and reads, turned into events;
//! - [`machine`]: the decisions (pure);
//! - [`effects`]: carrying out the machine's actions;
//! - [`event_loop`]: sources → machine → effects.

pub mod buffer;
mod effects;
mod event_loop;
pub mod harm;
pub mod kernel_text;
pub mod machine;
pub mod reanchor;
mod setup;
mod sources;
pub mod unexplained;
pub mod writer;

use crate::log::Log;
use crate::paths;
use crate::root::Root;
use crate::runtime::Mode;
pub use crate::sys::now_ms;
use event_loop::Guard;
use setup::Lock;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Re-executed after switch-root: the lock may still be held by us.
    pub resume: bool,
    /// For the real-root unit (Type=forking, PIDFile=): take over a running
    /// guard, or daemonize.
    pub adopt: bool,
}

/// `oom-ext guard`. Returns the exit code.
pub fn run(root: &Root, log: &mut Log, opts: Options) -> i32 {
    let mut lock = match setup::take_lock(root, opts.resume) {
        Ok(Lock::Mine(f)) => f,
        Ok(Lock::Held(pid)) => {
            let who = pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "unknown".into());
            if opts.adopt {
                if let Some(p) = pid {
                    if let Err(e) = setup::write_pidfile(root, p) {
                        log.err(&format!("cannot write {}: {e}", paths::PIDFILE));
                        return 1;
                    }
                    log.info(&format!("adopted the running guard (pid {p})"));
                    return 0;
                }
            }
            log.warn(&format!(
                "another guard (pid {who}) holds /{}; not starting a second one",
                paths::LOCKFILE
            ));
            return if opts.adopt { 1 } else { 0 };
        }
        Err(e) => {
            log.err(&format!("cannot lock /{}: {e}", paths::LOCKFILE));
            return 1;
        }
    };
    // Block the signals we handle before the pidfile announces us: a SIGTERM
    // that arrives before the loop's signalfd exists must not kill the
    // guard without its clean-up. The mask survives fork and exec.
    if let Err(e) = setup::handled_signals().thread_block() {
        log.warn(&format!("cannot block signals: {e}"));
    }
    let mut ready = None;
    if opts.adopt && !opts.resume {
        // SAFETY: no thread has been started yet (main calls run() first
        // thing; the writer thread starts after the set-up).
        match unsafe { setup::daemonize() } {
            Ok(r) => ready = Some(r),
            Err(e) => {
                log.err(&format!("cannot daemonize: {e}"));
                return 1;
            }
        }
    }
    if let Err(e) = setup::write_pid(root, &mut lock, std::process::id()) {
        log.warn(&format!("cannot write pid files: {e}"));
    }
    if let Some(r) = ready {
        // Tell the waiting parent (Type=forking) that the pidfile is there.
        setup::finish_daemonize(r);
    }
    let (mode, params) = setup::load_config(root, log);
    if mode == Mode::Off || !params.enabled {
        log.info("oom-ext is off (oom_ext=0): guard not needed, exiting");
        setup::remove_pidfile(root);
        return 0;
    }
    setup::harden(root, log);
    let mut g = match Guard::new(root.clone(), mode, params, log) {
        Ok(g) => g,
        Err(e) => {
            log.err(&format!("guard cannot start: {e}"));
            return 1;
        }
    };
    log.info(&g.start_line(opts.resume));
    g.write_state();
    setup::realtime(root);
    // After realtime(): the worker inherits the loop's priority.
    g.start_writer(log);
    let code = g.run_loop(log);
    drop(lock);
    code
}
