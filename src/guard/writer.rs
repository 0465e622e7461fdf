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
use crate::runtime::write_atomic;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::time::{Duration, Instant};

/// A crash-flag write this slow is logged.
const SLOW_FLAG_MS: u128 = 500;
/// Kernel mode: victim lines waiting for the module's flag, at most.
const MAX_PENDING: usize = 32;
/// The worker's stack: it only formats short lines (mlockall locks it all).
const STACK_BYTES: usize = 64 * 1024;

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
            Job::DropPending => {
                self.pending.clear();
                return;
            }
            Job::State(text) => {
                let _ = write_atomic(&self.root.join(paths::GUARD_STATE), &text);
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
}
