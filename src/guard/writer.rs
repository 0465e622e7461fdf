//! The guard's file writes (crash flag, state file) on a thread of their
//! own. Under memory pressure a write can wait seconds for a page or an
//! fsync (one crash-flag append took 1879 ms in a CI run): from the event
//! loop, that held back every event behind it, the next kill included.
//! Jobs run in order; [`Writer::drain`] waits for them where the order with
//! the outside matters (reboot, re-exec, exit).

#![forbid(unsafe_code)]

use crate::flag;
use crate::log::Log;
use crate::paths;
use crate::root::Root;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::time::{Duration, Instant};

/// A crash-flag write this slow is logged.
const SLOW_FLAG_MS: u128 = 500;
/// Kernel mode: victim lines waiting for the module's flag, at most.
const MAX_PENDING: usize = 32;
/// The worker's stack: it only formats short lines (mlockall locks it all).
const STACK_BYTES: usize = 64 * 1024;
/// How often [`Job::Settle`] looks for the module's flag.
const SETTLE_POLL: Duration = Duration::from_millis(50);

pub enum Job {
    /// Create the flag at this path with this content (never over an
    /// existing file).
    Create { flag: String, content: String },
    /// Append a line: to the flag this guard created (fallback mode), or in
    /// kernel mode to the module's flag once it exists (lines wait).
    Append {
        line: String,
        module_flag: Option<String>,
    },
    /// Remove the flag if this guard created it.
    RemoveOurs,
    /// Kernel mode, before a deliberate panic: the lines still waiting get
    /// `limit` for the module's flag (it creates it asynchronously); then
    /// the guard creates the flag itself with `content` and them, so the
    /// next boot's report still says why this boot ended.
    Settle {
        flag: String,
        content: String,
        limit: Duration,
    },
    /// Kernel mode: the OOM state is over; lines still waiting are dropped.
    DropPending,
    /// Rewrite /run/oom-ext/guard.state.
    State(String),
    /// Answer once every job before this one is done.
    Barrier(SyncSender<()>),
}

/// What the jobs remember between them.
pub struct Files {
    root: Root,
    log: Log,
    /// The flag this guard created (fallback mode), until removed.
    ours: Option<String>,
    pending: Vec<String>,
}

impl Files {
    pub fn new(root: Root, log: Log) -> Files {
        Files {
            root,
            log,
            ours: None,
            pending: Vec::new(),
        }
    }

    /// Runs one job (on the worker, or inline when there is none).
    pub fn run(&mut self, job: Job) {
        let started = Instant::now();
        let (what, path) = match job {
            Job::Create { flag, content } => {
                self.ours = match flag::create(&self.root, &flag, &content) {
                    Ok(()) => Some(flag.clone()),
                    Err(e) => {
                        self.log.warn(&format!(
                            "cannot create crash flag {flag}: {e} (an existing file is never overwritten)"
                        ));
                        None
                    }
                };
                ("creating", flag)
            }
            Job::Append {
                line,
                module_flag: Some(flag),
            } => {
                self.pending.push(line);
                self.flush_pending(&flag);
                ("appending to", flag)
            }
            Job::Append {
                line,
                module_flag: None,
            } => {
                let Some(flag) = self.ours.clone() else {
                    return;
                };
                let _ = flag::append(&self.root, &flag, &line);
                ("appending to", flag)
            }
            Job::RemoveOurs => {
                let Some(flag) = self.ours.take() else { return };
                if let Err(e) = flag::remove(&self.root, &flag) {
                    self.log
                        .warn(&format!("cannot remove crash flag {flag}: {e}"));
                }
                ("removing", flag)
            }
            Job::Settle {
                flag,
                content,
                limit,
            } => {
                self.settle(&flag, content, limit);
                ("settling", flag)
            }
            Job::DropPending => {
                self.pending.clear();
                return;
            }
            Job::State(text) => {
                let _ =
                    crate::rootfs::replace(&self.root, paths::GUARD_STATE, text.as_bytes(), 0o644);
                return;
            }
            Job::Barrier(done) => {
                let _ = done.send(());
                return;
            }
        };
        let ms = started.elapsed().as_millis();
        if ms >= SLOW_FLAG_MS {
            self.log.warn(&format!(
                "{what} the crash flag {path} took {ms} ms (fsync under memory pressure; the event loop went on)"
            ));
        }
    }

    /// Kernel mode: the module writes the flag, maybe after the kill line
    /// arrived; lines wait (bounded) until the flag is there.
    fn flush_pending(&mut self, flag: &str) {
        while let Some(line) = self.pending.first() {
            match flag::append(&self.root, flag, line) {
                Ok(()) => {
                    self.pending.remove(0);
                }
                Err(_) => break,
            }
        }
        self.pending.truncate(MAX_PENDING);
    }

    /// [`Job::Settle`].
    fn settle(&mut self, flag: &str, content: String, limit: Duration) {
        let start = Instant::now();
        loop {
            self.flush_pending(flag);
            if self.pending.is_empty() {
                return;
            }
            if start.elapsed() >= limit {
                break;
            }
            std::thread::sleep(SETTLE_POLL);
        }
        let mut text = content;
        for line in &self.pending {
            text.push_str(line);
        }
        match flag::create(&self.root, flag, &text) {
            Ok(()) => {
                self.pending.clear();
                self.log.warn(&format!(
                    "the module's crash flag {flag} did not appear within {} ms: created it with the lines that waited",
                    limit.as_millis()
                ));
            }
            // The module's came meanwhile (or the path is refused): one try more.
            Err(e) => {
                self.flush_pending(flag);
                if !self.pending.is_empty() {
                    self.log.warn(&format!(
                        "cannot create crash flag {flag}: {e}; {} lines lost",
                        self.pending.len()
                    ));
                }
            }
        }
    }
}

/// The loop's handle on the worker thread.
pub struct Writer {
    jobs: Sender<Job>,
}

impl Writer {
    /// Starts the worker. It inherits the calling thread's scheduling
    /// policy: start it after the loop's real-time priority is set, so a
    /// thrashing machine does not starve the flag's writes.
    pub fn spawn(files: Files) -> std::io::Result<Writer> {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = channel();
        std::thread::Builder::new()
            .name("oom-ext-writer".into())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                let mut files = files;
                while let Ok(job) = rx.recv() {
                    files.run(job);
                }
            })?;
        Ok(Writer { jobs: tx })
    }

    /// Queues a job. The worker cannot be gone while the loop runs: a
    /// panic aborts the whole process (Cargo.toml, panic = "abort").
    pub fn send(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    /// Waits until the jobs queued so far are done, at most `limit`.
    pub fn drain(&self, limit: Duration) -> bool {
        let (tx, rx) = sync_channel(1);
        if self.jobs.send(Job::Barrier(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(limit).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Sink;

    fn fake_root(tag: &str) -> Root {
        let dir = std::env::temp_dir().join(format!("oom-ext-writer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run/oom-ext")).unwrap();
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        std::fs::write(dir.join("dev/kmsg"), "").unwrap();
        Root::new(dir)
    }

    #[test]
    fn jobs_run_in_order_and_drain_waits_for_them() {
        let root = fake_root("order");
        let log = Log::new(root.clone(), Sink::Kmsg);
        let w = Writer::spawn(Files::new(root.clone(), log)).unwrap();
        let flag = root.join("oomflag");
        for job in [
            Job::Create {
                flag: "/oomflag".into(),
                content: "oom_ext_flag=1\n".into(),
            },
            Job::Append {
                line: "victim=1 a 2\n".into(),
                module_flag: None,
            },
            Job::State("state=oom\n".into()),
        ] {
            w.send(job);
        }
        assert!(w.drain(Duration::from_secs(10)));
        assert_eq!(
            std::fs::read_to_string(&flag).unwrap(),
            "oom_ext_flag=1\nvictim=1 a 2\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join(paths::GUARD_STATE)).unwrap(),
            "state=oom\n"
        );
        w.send(Job::RemoveOurs);
        assert!(w.drain(Duration::from_secs(10)));
        assert!(!flag.exists());
        let _ = std::fs::remove_dir_all(root.dir());
    }

    #[test]
    fn a_flag_someone_else_made_is_neither_appended_to_nor_removed() {
        let root = fake_root("foreign");
        let flag = root.join("oomflag");
        std::fs::write(&flag, "theirs\n").unwrap();
        let mut f = Files::new(root.clone(), Log::new(root.clone(), Sink::Kmsg));
        f.run(Job::Create {
            flag: "/oomflag".into(),
            content: "oom_ext_flag=1\n".into(),
        });
        f.run(Job::Append {
            line: "victim=1 a 2\n".into(),
            module_flag: None,
        });
        f.run(Job::RemoveOurs);
        assert_eq!(std::fs::read_to_string(&flag).unwrap(), "theirs\n");
        let log = std::fs::read_to_string(root.join("dev/kmsg")).unwrap();
        assert!(log.contains("never overwritten"), "{log}");
        let _ = std::fs::remove_dir_all(root.dir());
    }

    #[test]
    fn kernel_mode_lines_wait_for_the_modules_flag() {
        let root = fake_root("pending");
        let flag = root.join("oomflag");
        let mut f = Files::new(root.clone(), Log::new(root.clone(), Sink::Kmsg));
        f.run(Job::Append {
            line: "victim=1 a 2\n".into(),
            module_flag: Some("/oomflag".into()),
        });
        assert!(!flag.exists(), "never created by the guard in kernel mode");
        std::fs::write(&flag, "oom_ext_flag=1\n").unwrap();
        f.run(Job::Append {
            line: "victim=3 b 4\n".into(),
            module_flag: Some("/oomflag".into()),
        });
        assert_eq!(
            std::fs::read_to_string(&flag).unwrap(),
            "oom_ext_flag=1\nvictim=1 a 2\nvictim=3 b 4\n"
        );
        // Over: what still waits is dropped, not written into a later flag.
        std::fs::remove_file(&flag).unwrap();
        f.run(Job::Append {
            line: "victim=5 c 6\n".into(),
            module_flag: Some("/oomflag".into()),
        });
        f.run(Job::DropPending);
        std::fs::write(&flag, "oom_ext_flag=1\n").unwrap();
        f.run(Job::Append {
            line: "victim=7 d 8\n".into(),
            module_flag: Some("/oomflag".into()),
        });
        assert_eq!(
            std::fs::read_to_string(&flag).unwrap(),
            "oom_ext_flag=1\nvictim=7 d 8\n"
        );
        let _ = std::fs::remove_dir_all(root.dir());
    }

    fn settle(f: &mut Files, limit_ms: u64) {
        f.run(Job::Settle {
            flag: "/oomflag".into(),
            content: "oom_ext_flag=1\nsource=panic\n".into(),
            limit: Duration::from_millis(limit_ms),
        });
    }

    #[test]
    fn settle_waits_for_the_modules_flag_that_comes_late() {
        let root = fake_root("settle-late");
        let flag = root.join("oomflag");
        let mut f = Files::new(root.clone(), Log::new(root.clone(), Sink::Kmsg));
        f.run(Job::Append {
            line: "policy=panic\n".into(),
            module_flag: Some("/oomflag".into()),
        });
        let module = {
            let flag = flag.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                std::fs::write(&flag, "oom_ext_flag=1\nsource=module\n").unwrap();
            })
        };
        settle(&mut f, 5000);
        module.join().unwrap();
        assert_eq!(
            std::fs::read_to_string(&flag).unwrap(),
            "oom_ext_flag=1\nsource=module\npolicy=panic\n"
        );
        let _ = std::fs::remove_dir_all(root.dir());
    }

    #[test]
    fn settle_creates_the_flag_when_the_module_never_does() {
        let root = fake_root("settle-never");
        let flag = root.join("oomflag");
        let mut f = Files::new(root.clone(), Log::new(root.clone(), Sink::Kmsg));
        f.run(Job::Append {
            line: "policy=panic\n".into(),
            module_flag: Some("/oomflag".into()),
        });
        let start = Instant::now();
        settle(&mut f, 200);
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert_eq!(
            std::fs::read_to_string(&flag).unwrap(),
            "oom_ext_flag=1\nsource=panic\npolicy=panic\n"
        );
        let log = std::fs::read_to_string(root.join("dev/kmsg")).unwrap();
        assert!(log.contains("did not appear within 200 ms"), "{log}");
        // Nothing waits any more: a flag of the next OOM state gets no stale line.
        std::fs::remove_file(&flag).unwrap();
        std::fs::write(&flag, "oom_ext_flag=1\n").unwrap();
        settle(&mut f, 0);
        assert_eq!(std::fs::read_to_string(&flag).unwrap(), "oom_ext_flag=1\n");
        let _ = std::fs::remove_dir_all(root.dir());
    }

    #[test]
    fn settle_with_nothing_waiting_neither_waits_nor_creates() {
        let root = fake_root("settle-none");
        let mut f = Files::new(root.clone(), Log::new(root.clone(), Sink::Kmsg));
        let start = Instant::now();
        settle(&mut f, 5000);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(!root.join("oomflag").exists());
        let _ = std::fs::remove_dir_all(root.dir());
    }
}
