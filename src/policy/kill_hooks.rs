//! `/etc/oom-ext/kill.d`: executables run after each kill the guard makes,
//! with the event as JSON on stdin and as `OOM_EXT_*` variables, through
//! the report hooks' runner ([`crate::hooks`]: name order, only safe
//! files, a process group of their own killed at the timeout, /dev/null
//! for output). They run on a thread of their own, fed through a bounded
//! queue: the event loop hands the event over and goes on, it never
//! waits for a hook before its next decision.

use crate::hooks::{self, Child};
use crate::json::Object;
use crate::log::Log;
use crate::paths;
use crate::root::Root;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::Duration;

/// One hook may run this long; its process group is killed then.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Events waiting for the hooks, at most (a kill storm with slow hooks
/// drops the newest, logged).
const QUEUE: usize = 16;
/// The thread's stack: it formats lines and spawns processes.
const STACK_BYTES: usize = 128 * 1024;

/// What the hooks are told about one kill.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KillEvent {
    /// `kill` (the victim chosen) or `parent` (kill-parent, seed 002).
    pub kind: &'static str,
    pub pid: u32,
    pub comm: String,
    /// The victim's systemd unit, empty if none.
    pub unit: String,
    /// The cgroup killed whole with it (`kill_scope=unit`,
    /// `memory.oom.group`), empty if none.
    pub cgroup: String,
    /// Why it was chosen: the rule, the list entry, or oom_score.
    pub reason: String,
    /// Its RSS when chosen: roughly what the kill frees (shared pages aside;
    /// a cgroup killed whole frees more).
    pub freed_kb: u64,
    pub unix_time: u64,
}

impl KillEvent {
    pub fn json(&self) -> String {
        Object::new()
            .str("event", self.kind)
            .num("pid", u64::from(self.pid))
            .str("comm", &self.comm)
            .str("unit", &self.unit)
            .str("cgroup", &self.cgroup)
            .str("reason", &self.reason)
            .num("freed_kb", self.freed_kb)
            .num("time", self.unix_time)
            .finish()
    }

    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("OOM_EXT_EVENT", self.kind.to_string()),
            ("OOM_EXT_VICTIM_PID", self.pid.to_string()),
            ("OOM_EXT_VICTIM_COMM", self.comm.clone()),
            ("OOM_EXT_VICTIM_UNIT", self.unit.clone()),
            ("OOM_EXT_CGROUP", self.cgroup.clone()),
            ("OOM_EXT_REASON", self.reason.clone()),
            ("OOM_EXT_FREED_KB", self.freed_kb.to_string()),
            ("OOM_EXT_TIME", self.unix_time.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The guard's side: the queue to the hook thread, started at the first
/// kill that finds something in kill.d.
pub struct KillHooks {
    root: Root,
    log: Log,
    timeout: Duration,
    tx: Option<SyncSender<KillEvent>>,
}

impl KillHooks {
    pub fn new(root: Root, log: Log, timeout: Duration) -> KillHooks {
        KillHooks {
            root,
            log,
            timeout,
            tx: None,
        }
    }

    /// Hands the events to the hook thread and returns at once.
    pub fn send(&mut self, events: Vec<KillEvent>) {
        if events.is_empty() {
            return;
        }
        if self.tx.is_none() {
            // An empty or missing kill.d costs one directory open, no thread.
            if hooks::list_in(&self.root, paths::KILL_D).is_empty() {
                return;
            }
            match self.spawn() {
                Ok(tx) => self.tx = Some(tx),
                Err(e) => {
                    self.log.warn(&format!(
                        "cannot start the kill hook thread: {e}; /{} not run",
                        paths::KILL_D
                    ));
                    return;
                }
            }
        }
        let Some(tx) = &self.tx else { return };
        for ev in events {
            match tx.try_send(ev) {
                Ok(()) => {}
                Err(TrySendError::Full(ev)) => self.log.warn(&format!(
                    "kill hooks are {QUEUE} events behind: not run for {} {}",
                    ev.pid, ev.comm
                )),
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }

    fn spawn(&self) -> std::io::Result<SyncSender<KillEvent>> {
        let (tx, rx) = sync_channel::<KillEvent>(QUEUE);
        let (root, log, timeout) = (self.root.clone(), self.log.clone(), self.timeout);
        std::thread::Builder::new()
            .name("oom-ext-killhooks".into())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                while let Ok(ev) = rx.recv() {
                    run_all(&root, &ev, &log, timeout);
                }
            })?;
        Ok(tx)
    }
}

/// Runs every hook of kill.d for one event, in name order.
pub fn run_all(root: &Root, ev: &KillEvent, log: &Log, timeout: Duration) {
    let json = ev.json();
    use std::os::unix::ffi::OsStringExt;
    let adj = std::ffi::CString::new(
        root.join("proc/self/oom_score_adj")
            .into_os_string()
            .into_vec(),
    )
    .ok();
    let child = Child {
        env: ev.env(),
        plain: adj,
    };
    for (name, ok) in hooks::list_in(root, paths::KILL_D) {
        let shown = format!("/{}/{}", paths::KILL_D, crate::cmdline::escape_value(&name));
        if let Err(why) = ok {
            log.warn(&format!("kill hook {shown}: {why}"));
            continue;
        }
        let path = root.join(paths::KILL_D).join(&name);
        match hooks::run_child(&path, &json, &child, timeout) {
            Ok(0) => log.info(&format!("kill hook {shown} done for {}", ev.pid)),
            Ok(code) => log.warn(&format!("kill hook {shown} exited with {code}")),
            Err(e) => log.warn(&format!("kill hook {shown}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Sink;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    fn fake_root(tag: &str) -> Root {
        let dir =
            std::env::temp_dir().join(format!("oom-ext-killhooks-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(paths::KILL_D)).unwrap();
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        std::fs::write(dir.join("dev/kmsg"), "").unwrap();
        Root::new(dir)
    }

    fn hook(root: &Root, name: &str, body: &str) {
        let p = root.join(paths::KILL_D).join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn event() -> KillEvent {
        KillEvent {
            kind: "kill",
            pid: 4242,
            comm: "hog \"x\"".into(),
            unit: "leak.service".into(),
            cgroup: String::new(),
            reason: "oom_score".into(),
            freed_kb: 123_456,
            unix_time: 1_700_000_000,
        }
    }

    fn wait_for(path: &std::path::Path, secs: u64) -> String {
        let start = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(path) {
                if s.ends_with("end\n") {
                    return s;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "{} not written",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_hook_gets_the_event_as_json_and_variables_without_holding_up_the_caller() {
        let root = fake_root("event");
        let out = root.join("out");
        hook(
            &root,
            "10-record",
            &format!(
                "{{ cat; echo; echo \"$OOM_EXT_EVENT $OOM_EXT_VICTIM_PID $OOM_EXT_VICTIM_UNIT $OOM_EXT_REASON $OOM_EXT_FREED_KB\"; }} > {0}.tmp\nsleep 1\necho end >> {0}.tmp\nmv {0}.tmp {0}",
                out.display()
            ),
        );
        let log = Log::new(root.clone(), Sink::Kmsg);
        let mut h = KillHooks::new(root.clone(), log, TIMEOUT);
        let start = Instant::now();
        h.send(vec![event()]);
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "send waited for the hook: {:?}",
            start.elapsed()
        );
        let got = wait_for(&out, 20);
        assert!(
            got.starts_with(
                r#"{"event":"kill","pid":4242,"comm":"hog \"x\"","unit":"leak.service","cgroup":"","reason":"oom_score","freed_kb":123456,"time":1700000000}"#
            ),
            "{got}"
        );
        assert!(
            got.contains("\nkill 4242 leak.service oom_score 123456\n"),
            "{got}"
        );
        let _ = std::fs::remove_dir_all(root.dir());
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed_with_its_group_and_the_next_one_runs() {
        let root = fake_root("timeout");
        let left = root.join("left");
        hook(
            &root,
            "10-slow",
            &format!("(sleep 3; echo alive > {}) &\nsleep 30", left.display()),
        );
        let out = root.join("out");
        hook(&root, "20-next", &format!("echo end > {}", out.display()));
        let log = Log::new(root.clone(), Sink::Kmsg);
        let start = Instant::now();
        run_all(&root, &event(), &log, Duration::from_millis(300));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "end\n");
        std::thread::sleep(Duration::from_secs(4));
        assert!(!left.exists(), "the slow hook's background child lived on");
        let logged = std::fs::read_to_string(root.join("dev/kmsg")).unwrap();
        assert!(
            logged.contains("kill hook /etc/oom-ext/kill.d/10-slow: killed after"),
            "{logged}"
        );
        let _ = std::fs::remove_dir_all(root.dir());
    }

    #[test]
    fn an_unsafe_hook_is_not_run_and_an_empty_kill_d_starts_no_thread() {
        let root = fake_root("unsafe");
        let log = Log::new(root.clone(), Sink::Kmsg);
        let mut h = KillHooks::new(root.clone(), log.clone(), TIMEOUT);
        h.send(vec![event()]);
        assert!(h.tx.is_none(), "a thread for an empty kill.d");
        let out = root.join("out");
        hook(&root, "10-open", &format!("echo ran > {}", out.display()));
        let p = root.join(paths::KILL_D).join("10-open");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        run_all(&root, &event(), &log, TIMEOUT);
        assert!(!out.exists());
        let logged = std::fs::read_to_string(root.join("dev/kmsg")).unwrap();
        assert!(
            logged.contains("10-open: writable by group or others: not run"),
            "{logged}"
        );
        let _ = std::fs::remove_dir_all(root.dir());
    }
}
