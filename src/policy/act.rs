//! One kill by oom_ext's choice, end to end: read the table, the rules
//! and the list, choose, widen to a unit or an oom.group cgroup when
//! asked, kill (or only say so in a dry run), log one line, and blame the
//! parent. The guard calls [`kill_one`] where it used to write sysrq `f`,
//! and falls back to sysrq `f` on [`Outcome::Fallback`].

use super::kill::{kill_group, kill_process};
use super::kill_hooks::KillEvent;
use super::parent::{blameable, ParentId, Parents};
use super::rank::{describe, ranked, Choice, Context, Listed};
use super::rules::{Policy, Verb};
use super::{load, proctable, scope, Proc};
use crate::flag::Victim;
use crate::log::{Level, Log};
use crate::root::Root;

/// journald `MESSAGE_ID`s, one per event kind (systemd/oom-ext.catalog).
pub const MSG_KILL: &str = "0f9f2ed9e9bc487d8c71326a256fcb7f";
pub const MSG_DRY_RUN: &str = "245d118ba4bc4d618a9019081cb89fb7";
pub const MSG_PARENT: &str = "c777a692d4af49639b21bd222aafa6f3";
pub const MSG_FALLBACK: &str = "dc8f064ba2464f6ca62402d2bc561ac6";

/// The journal fields of a kill (or would-be kill).
fn fields(c: &Choice<'_>, group: Option<&str>) -> Vec<(&'static str, String)> {
    let v = c.victim.proc;
    let mut f = vec![
        ("OOM_EXT_VICTIM_PID", v.pid.to_string()),
        ("OOM_EXT_VICTIM_COMM", v.name.clone()),
        ("OOM_EXT_VICTIM_UNIT", v.unit().unwrap_or("").to_string()),
        ("OOM_EXT_VICTIM_RSS_KB", v.rss_kb.to_string()),
        ("OOM_EXT_VICTIM_OOM_SCORE", v.oom_score.to_string()),
        ("OOM_EXT_REASON", c.victim.why.to_string()),
        ("OOM_EXT_CGROUP", group.unwrap_or("").to_string()),
    ];
    if let Some(r) = &c.runner_up {
        f.push(("OOM_EXT_RUNNER_UP_PID", r.proc.pid.to_string()));
        f.push(("OOM_EXT_RUNNER_UP_COMM", r.proc.name.clone()));
    }
    f
}

pub use crate::params::KillScope;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub dry_run: bool,
    pub kill_scope: KillScope,
    /// Page size in KiB (rss of `/proc/PID/stat`).
    pub page_kb: u64,
    pub guard_pid: u32,
}

#[derive(Debug)]
pub enum Outcome {
    /// Killed (the victim, and its parent when parent_max says so): what
    /// the machine awaits, and what the kill.d hooks are told.
    Killed(Vec<Victim>, Vec<KillEvent>),
    /// Dry run: the choice was logged, nobody was killed.
    DryRun,
    /// No candidate, or the kill failed: the caller writes sysrq `f`.
    Fallback,
}

fn read_start(root: &Root, pid: u32) -> Option<u64> {
    proctable::read_start(root, pid)
}

fn oom_group_set(root: &Root, cg: &str) -> bool {
    crate::rootfs::read_small(root, &format!("sys/fs/cgroup{cg}/memory.oom.group"))
        .is_some_and(|s| std::str::from_utf8(&s).is_ok_and(|t| t.trim() == "1"))
}

/// The cgroup to take whole with the victim, if any: a `memory.oom.group`
/// ancestor always, the unit with `kill_scope=unit`.
fn group_for(
    root: &Root,
    cfg: &Config,
    v: &Proc,
    guard_cg: Option<&str>,
    log: &Log,
) -> Option<String> {
    let cg = v.cgroup.as_deref()?;
    if let Some(g) = scope::oom_group(cg, |p| oom_group_set(root, p)) {
        match scope::refuse_group(g, guard_cg) {
            None => return Some(g.to_string()),
            Some(why) => log.warn(&format!(
                "not killing memory.oom.group cgroup {g} whole: {why}"
            )),
        }
    }
    if cfg.kill_scope == KillScope::Unit {
        match scope::unit_group(cg, guard_cg) {
            Ok(g) => return Some(g.to_string()),
            Err(why) => log.warn(&format!(
                "kill_scope=unit: not killing the unit of {} ({cg}) whole: {why}; the process alone",
                v.pid
            )),
        }
    }
    None
}

/// Kills `v` (and its group); the pidfd of `v` on success.
/// Why a kill did not happen: `gone` when the process had exited (or its
/// pid is someone else's now) — nothing was killed, the next one may be.
struct NotKilled {
    gone: bool,
    why: String,
}

/// Kills `v` (and its group); what the machine awaits on success.
fn kill_victim(root: &Root, v: &Proc, group: Option<&str>, log: &Log) -> Result<Victim, NotKilled> {
    let mut group_killed = false;
    if let Some(g) = group {
        match kill_group(root, g) {
            Ok(()) => group_killed = true,
            Err(e) => log.warn(&format!(
                "cannot write 1 to {g}/cgroup.kill: {e}; killing {} alone",
                v.pid
            )),
        }
    }
    let victim = Victim {
        pid: v.pid,
        comm: v.name.clone(),
        rss_kb: v.rss_kb,
        cgroup: v.cgroup.clone(),
    };
    if !root.is_system() {
        return Err(NotKilled {
            gone: false,
            why: format!(
                "not killing {}: a fake root's pids are not this machine's",
                v.pid
            ),
        });
    }
    match kill_process(v.pid, v.start_time, || read_start(root, v.pid)) {
        Ok(k) => {
            if !k.released {
                log.info(&format!(
                    "process_mrelease of {} did not run (the kernel reaps it)",
                    v.pid
                ));
            }
            // The loop watches the victim's exit with a pidfd of its own.
            drop(k.pidfd);
            Ok(victim)
        }
        // cgroup.kill got there first.
        Err(e) if group_killed && e.raw_os_error() == Some(libc::ESRCH) => Ok(victim),
        Err(e) => Err(NotKilled {
            gone: e.raw_os_error() == Some(libc::ESRCH),
            why: format!("cannot kill {}: {e}", v.pid),
        }),
    }
}

/// Candidates tried at most when the first ones exit before their kill.
const TRIES: usize = 3;

/// The settings of the policy that come from the parameters
/// (`oom_ext.dry_run=`, `oom_ext.kill_scope=`, `oom_ext.parent_max=`,
/// `oom_ext.parent_expire=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    pub dry_run: bool,
    pub kill_scope: KillScope,
    pub parent_max: u32,
    pub parent_expire_s: u32,
}

/// The guard's side of the policy: the files as loaded at start and on
/// SIGHUP, the kill-parent table, the settings in effect.
#[derive(Debug)]
pub struct Chooser {
    root: Root,
    policy: Policy,
    parents: Parents,
    settings: Settings,
    page_kb: u64,
}

impl Chooser {
    pub fn new(root: &Root, settings: Settings, log: &Log) -> Chooser {
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096);
        let mut c = Chooser {
            root: root.clone(),
            policy: Policy::default(),
            parents: Parents::new(settings.parent_max, settings.parent_expire_s),
            settings,
            page_kb: (page as u64 / 1024).max(1),
        };
        c.load(log);
        c.align(log);
        c
    }

    fn load(&mut self, log: &Log) {
        let (policy, problems) = load::load_policy(&self.root);
        for p in &problems {
            log.warn(&format!("policy: {p}"));
        }
        self.policy = policy;
        log.info(&self.summary());
    }

    /// SIGHUP: the files and the settings again. The kill-parent counts
    /// survive unless its limits changed.
    pub fn reload(&mut self, settings: Settings, log: &Log) {
        let (max, exp) = (settings.parent_max, settings.parent_expire_s);
        if (max, exp) != (self.settings.parent_max, self.settings.parent_expire_s) {
            self.parents = Parents::new(max, exp);
        }
        self.settings = settings;
        self.load(log);
        self.align(log);
    }

    pub fn dry_run(&self) -> bool {
        self.settings.dry_run || self.policy.settings.dry_run == Some(true)
    }

    /// One line: the rules and settings in effect.
    pub fn summary(&self) -> String {
        let r = &self.policy.rules;
        let count = |v: Verb| r.iter().filter(|x| x.verb == v).count();
        format!(
            "policy: {} rules (prefer {}, avoid {}, protect {}, default {}), kill_scope={}, dry_run={}, parent_max={}, parent_expire={}",
            r.len(),
            count(Verb::Prefer),
            count(Verb::Avoid),
            count(Verb::Protect),
            count(Verb::Default),
            self.settings.kill_scope.as_str(),
            u8::from(self.dry_run()),
            self.settings.parent_max,
            self.settings.parent_expire_s
        )
    }

    /// Brings oom_score_adj in line with the rules ([`super::align`]), so
    /// the kernel's own choice leans the same way; one log line for all.
    pub fn align(&self, log: &Log) {
        if self.policy.rules.is_empty() {
            return;
        }
        let table = proctable::read_table(&self.root, self.page_kb);
        let ctx = Context {
            guard_pid: std::process::id(),
            policy: &self.policy,
            list: &[],
        };
        let changes = super::align::changes(&table, &ctx);
        if changes.is_empty() {
            return;
        }
        let dry = self.dry_run();
        let mut done = Vec::new();
        for &(pid, start, from, to) in &changes {
            let name = table
                .iter()
                .find(|p| p.pid == pid)
                .map_or("", |p| p.name.as_str());
            if !dry {
                // Still the same process (a pid reused meanwhile is left alone).
                if read_start(&self.root, pid) != Some(start) {
                    continue;
                }
                // Inside the root, an existing regular file only: a link
                // planted in a fake root's proc is not written through.
                let path = format!("proc/{pid}/oom_score_adj");
                if let Err(e) =
                    crate::rootfs::write_existing(&self.root, &path, to.to_string().as_bytes())
                {
                    log.warn(&format!(
                        "cannot set oom_score_adj of {pid} {name} to {to}: {e}"
                    ));
                    continue;
                }
            }
            done.push(format!("{pid} {name} {from}->{to}"));
        }
        let shown: Vec<&str> = done.iter().take(10).map(String::as_str).collect();
        let more = done.len().saturating_sub(shown.len());
        log.info(&format!(
            "{}oom_score_adj in line with the rules for {} processes: {}{}",
            if dry { "dry run: would set " } else { "set " },
            done.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }

    /// One kill by the policy ([`kill_one`]).
    pub fn kill(&mut self, now_ms: u64, log: &Log) -> Outcome {
        let cfg = Config {
            dry_run: self.dry_run(),
            kill_scope: self.settings.kill_scope,
            page_kb: self.page_kb,
            guard_pid: std::process::id(),
        };
        kill_one(
            &self.root,
            &cfg,
            &self.policy,
            &mut self.parents,
            now_ms,
            log,
        )
    }
}

/// Chooses and kills one victim (see the module comment).
pub fn kill_one(
    root: &Root,
    cfg: &Config,
    policy: &Policy,
    parents: &mut Parents,
    now_ms: u64,
    log: &Log,
) -> Outcome {
    let (list, list_problem) = load::load_list(root);
    if let Some(p) = list_problem {
        log.warn(&p);
    }
    let table = proctable::read_table(root, cfg.page_kb);
    kill_from(root, cfg, policy, &list, &table, parents, now_ms, log)
}

#[allow(clippy::too_many_arguments)]
fn kill_from(
    root: &Root,
    cfg: &Config,
    policy: &Policy,
    list: &[Listed],
    table: &[Proc],
    parents: &mut Parents,
    now_ms: u64,
    log: &Log,
) -> Outcome {
    let ctx = Context {
        guard_pid: cfg.guard_pid,
        policy,
        list,
    };
    let (ranked, protected) = ranked(table, &ctx);
    if ranked.is_empty() {
        log.event(
            Level::Warning,
            &format!(
                "no process oom_ext may kill among {} (the kernel's OOM killer chooses)",
                table.len()
            ),
            MSG_FALLBACK,
            &[],
        );
        return Outcome::Fallback;
    }
    let guard_cg = table
        .iter()
        .find(|p| p.pid == cfg.guard_pid)
        .and_then(|p| p.cgroup.clone());
    let mut tried = 0;
    let (choice, group, first) = loop {
        let choice = Choice {
            victim: ranked[tried],
            runner_up: ranked.get(tried + 1).copied(),
            protected,
        };
        let v = choice.victim.proc;
        let group = group_for(root, cfg, v, guard_cg.as_deref(), log);
        if cfg.dry_run {
            log.event(
                Level::Notice,
                &format!("dry run: would kill {}", choice.describe(group.as_deref())),
                MSG_DRY_RUN,
                &fields(&choice, group.as_deref()),
            );
            return Outcome::DryRun;
        }
        match kill_victim(root, v, group.as_deref(), log) {
            Ok(k) => break (choice, group, k),
            Err(e) if e.gone && tried + 1 < TRIES.min(ranked.len()) => {
                log.info(&format!(
                    "{}: it exited before the kill; the next candidate",
                    e.why
                ));
                tried += 1;
            }
            Err(e) => {
                log.event(
                    Level::Warning,
                    &format!("{}; the kernel's OOM killer chooses", e.why),
                    MSG_FALLBACK,
                    &fields(&choice, group.as_deref()),
                );
                return Outcome::Fallback;
            }
        }
    };
    let v = choice.victim.proc;
    // Captured from the table read before the kill: the parent link is
    // gone once the victim has been reaped.
    let parent = table
        .iter()
        .find(|p| p.pid == v.ppid)
        .filter(|p| blameable(p, &ctx));
    let mut killed = vec![first];
    let mut events = vec![KillEvent {
        kind: "kill",
        pid: v.pid,
        comm: v.name.clone(),
        unit: v.unit().unwrap_or("").to_string(),
        cgroup: group.clone().unwrap_or_default(),
        reason: choice.victim.why.to_string(),
        freed_kb: v.rss_kb,
        unix_time: crate::log::unix_now(),
    }];
    log.event(
        Level::Notice,
        &format!("killed {}", choice.describe(group.as_deref())),
        MSG_KILL,
        &fields(&choice, group.as_deref()),
    );
    if let Some(pp) = parent {
        let id = ParentId {
            pid: pp.pid,
            start_time: pp.start_time,
        };
        if parents.victim_of(id, now_ms) {
            match kill_victim(root, pp, None, log) {
                Ok(k) => {
                    log.event(
                        Level::Notice,
                        &format!(
                            "killed parent {}: parent_max={} of its children were OOM victims",
                            describe(pp),
                            parents.max
                        ),
                        MSG_PARENT,
                        &[
                            ("OOM_EXT_VICTIM_PID", pp.pid.to_string()),
                            ("OOM_EXT_VICTIM_COMM", pp.name.clone()),
                            ("OOM_EXT_VICTIM_UNIT", pp.unit().unwrap_or("").to_string()),
                            ("OOM_EXT_CHILD_PID", v.pid.to_string()),
                            ("OOM_EXT_PARENT_MAX", parents.max.to_string()),
                        ],
                    );
                    killed.push(k);
                    events.push(KillEvent {
                        kind: "parent",
                        pid: pp.pid,
                        comm: pp.name.clone(),
                        unit: pp.unit().unwrap_or("").to_string(),
                        cgroup: String::new(),
                        reason: format!(
                            "parent_max={} of its children were OOM victims (the last {})",
                            parents.max, v.pid
                        ),
                        freed_kb: pp.rss_kb,
                        unix_time: crate::log::unix_now(),
                    });
                }
                Err(e) => log.warn(&format!("parent_max: {}", e.why)),
            }
        }
    }
    Outcome::Killed(killed, events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Sink;

    fn p(pid: u32, ppid: u32, name: &str, score: u32) -> Proc {
        Proc {
            pid,
            ppid,
            start_time: 1,
            name: name.into(),
            cgroup: Some(format!("/system.slice/{name}.service")),
            oom_score: score,
            rss_kb: 1024,
            ..Proc::default()
        }
    }

    #[test]
    fn a_victim_gone_before_its_kill_passes_to_the_next() {
        let dir = std::env::temp_dir().join(format!("oom-ext-act-real-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        std::fs::write(dir.join("dev/kmsg"), "").unwrap();
        let log = Log::new(Root::new(&dir), Sink::Kmsg);
        let spawn = || {
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap()
        };
        let real = |c: &std::process::Child, name: &str, score: u32| {
            let mut pr = proctable::read_proc(&Root::system(), c.id(), 4).unwrap();
            pr.name = name.into();
            pr.oom_score = score;
            pr.cgroup = None;
            pr.rss_kb = 1024;
            pr
        };
        let (mut a, mut b, mut c) = (spawn(), spawn(), spawn());
        let table = vec![
            real(&a, "gone", 900),
            real(&b, "next", 800),
            real(&c, "last", 700),
        ];
        a.kill().unwrap();
        a.wait().unwrap();
        let cfg = Config {
            dry_run: false,
            kill_scope: KillScope::Process,
            page_kb: 4,
            guard_pid: std::process::id(),
        };
        let mut parents = Parents::new(0, 0);
        let o = kill_from(
            &Root::system(),
            &cfg,
            &Policy::default(),
            &[],
            &table,
            &mut parents,
            0,
            &log,
        );
        use std::os::unix::process::ExitStatusExt;
        let b_status = b.wait().unwrap();
        let c_alive = c.try_wait().unwrap().is_none();
        let _ = c.kill();
        let _ = c.wait();
        let logged = std::fs::read_to_string(dir.join("dev/kmsg")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        match o {
            Outcome::Killed(v, ev) => {
                assert_eq!(v.iter().map(|v| v.pid).collect::<Vec<_>>(), [b.id()]);
                assert_eq!(
                    ev.iter().map(|e| (e.kind, e.pid)).collect::<Vec<_>>(),
                    [("kill", b.id())]
                );
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(b_status.signal(), Some(libc::SIGKILL));
        assert!(c_alive, "the runner-up was killed too");
        assert!(
            logged.contains("it exited before the kill; the next candidate"),
            "{logged}"
        );
        assert!(
            logged.contains(&format!("killed {} next (unit none, rss 1 MiB, oom_score 800) chosen by oom_score; runner-up {} last", b.id(), c.id())),
            "{logged}"
        );
    }

    #[test]
    fn dry_run_logs_the_choice_and_kills_nobody() {
        let dir = std::env::temp_dir().join(format!("oom-ext-act-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        std::fs::write(dir.join("dev/kmsg"), "").unwrap();
        let root = Root::new(&dir);
        let log = Log::new(root.clone(), Sink::Kmsg);
        let cfg = Config {
            dry_run: true,
            kill_scope: KillScope::Unit,
            page_kb: 4,
            guard_pid: 9,
        };
        let table = vec![p(9, 1, "guard", 0), p(10, 1, "a", 100), p(11, 10, "b", 200)];
        let mut parents = Parents::new(1, 60);
        let o = kill_from(
            &root,
            &cfg,
            &Policy::default(),
            &[],
            &table,
            &mut parents,
            0,
            &log,
        );
        assert!(matches!(o, Outcome::DryRun), "{o:?}");
        // A real run against a fake root kills nobody either: the caller
        // falls back (the fake root's pids are not this machine's).
        let cfg = Config {
            dry_run: false,
            ..cfg
        };
        let o = kill_from(
            &root,
            &cfg,
            &Policy::default(),
            &[],
            &table,
            &mut parents,
            0,
            &log,
        );
        assert!(matches!(o, Outcome::Fallback), "{o:?}");
        let o = kill_from(
            &root,
            &cfg,
            &Policy::default(),
            &[],
            &table[..1],
            &mut parents,
            0,
            &log,
        );
        assert!(matches!(o, Outcome::Fallback), "{o:?}");
        let logged = std::fs::read_to_string(dir.join("dev/kmsg")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let lines: Vec<&str> = logged
            .lines()
            .map(|l| l.split_once("]: ").unwrap().1)
            .collect();
        assert_eq!(
            lines,
            [
                "dry run: would kill 11 b (unit b.service, rss 1 MiB, oom_score 200) with its cgroup /system.slice/b.service chosen by oom_score; runner-up 10 a (unit a.service, rss 1 MiB, oom_score 100) by oom_score",
                "cannot write 1 to /system.slice/b.service/cgroup.kill: does not exist; killing 11 alone",
                "not killing 11: a fake root's pids are not this machine's; the kernel's OOM killer chooses",
                "no process oom_ext may kill among 1 (the kernel's OOM killer chooses)",
            ]
        );
    }
}
