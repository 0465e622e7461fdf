//! The choice of one victim from a process table. Pure.
//!
//! Never PID 1, a kernel thread, the guard, a process with
//! `oom_score_adj=-1000`, one without memory (exiting, zombie) or one a
//! `protect` rule covers. The rest are ranked in classes, best first:
//! the run-time ordered list (`oom-ext victims add`) in list order, then
//! `prefer`, then no rule (or `default`), then `avoid`; within a class by
//! the kernel's `oom_score` (which honours `oom_score_adj`), then rss.
#![forbid(unsafe_code)]

use super::rules::{Policy, Rule, Verb};
use super::Proc;

/// One entry of the run-time ordered list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// A process; with its start time when known, so that a later process
    /// that got the same pid is not taken for it.
    Pid { pid: u32, start_time: Option<u64> },
    /// Every process of a systemd unit (by its name, e.g. `leak.service`).
    Unit(String),
}

impl Listed {
    pub fn matches(&self, p: &Proc) -> bool {
        match self {
            Listed::Pid { pid, start_time } => {
                *pid == p.pid && start_time.map_or(true, |s| s == p.start_time)
            }
            Listed::Unit(u) => p.unit() == Some(u.as_str()),
        }
    }
}

impl std::fmt::Display for Listed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listed::Pid { pid, .. } => write!(f, "{pid}"),
            Listed::Unit(u) => f.write_str(u),
        }
    }
}

/// What the chooser knows besides the table.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub guard_pid: u32,
    pub policy: &'a Policy,
    pub list: &'a [Listed],
}

/// Why a process can never be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion<'a> {
    Init,
    KernelThread,
    Guard,
    Unkillable,
    NoMemory,
    Protected(&'a Rule),
}

/// Why the victim was ranked first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why<'a> {
    /// Position in the run-time list (0 = first).
    Listed(usize),
    Rule(&'a Rule),
    /// The kernel's ranking alone.
    Score,
}

impl std::fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Listed(i) => write!(f, "entry {} of the victims list", i + 1),
            Why::Rule(r) => write!(f, "rule {r}"),
            Why::Score => f.write_str("oom_score"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick<'a> {
    pub proc: &'a Proc,
    pub why: Why<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice<'a> {
    pub victim: Pick<'a>,
    pub runner_up: Option<Pick<'a>>,
    /// Processes a `protect` rule kept out.
    pub protected: usize,
}

/// Why `p` can never be chosen, if it cannot.
pub fn excluded<'a>(p: &Proc, ctx: &Context<'a>) -> Option<Exclusion<'a>> {
    if p.pid <= 1 {
        return Some(Exclusion::Init);
    }
    if p.kthread {
        return Some(Exclusion::KernelThread);
    }
    if p.pid == ctx.guard_pid {
        return Some(Exclusion::Guard);
    }
    if p.oom_score_adj <= -1000 {
        return Some(Exclusion::Unkillable);
    }
    if p.rss_kb == 0 {
        return Some(Exclusion::NoMemory);
    }
    match ctx.policy.rule_for(p) {
        Some(r) if r.verb == Verb::Protect => Some(Exclusion::Protected(r)),
        _ => None,
    }
}

/// Lower is chosen first: (class, list position).
fn class<'a>(p: &Proc, ctx: &Context<'a>) -> (u8, usize, Why<'a>) {
    if let Some(i) = ctx.list.iter().position(|l| l.matches(p)) {
        return (0, i, Why::Listed(i));
    }
    match ctx.policy.rule_for(p) {
        Some(r) if r.verb == Verb::Prefer => (1, 0, Why::Rule(r)),
        Some(r) if r.verb == Verb::Avoid => (3, 0, Why::Rule(r)),
        _ => (2, 0, Why::Score),
    }
}

/// Every candidate, best first.
pub fn ranked<'a>(table: &'a [Proc], ctx: &Context<'a>) -> (Vec<Pick<'a>>, usize) {
    let mut protected = 0;
    let mut c: Vec<((u8, usize), Pick<'a>)> = Vec::new();
    for p in table {
        match excluded(p, ctx) {
            Some(Exclusion::Protected(_)) => protected += 1,
            Some(_) => {}
            None => {
                let (k, i, why) = class(p, ctx);
                c.push(((k, i), Pick { proc: p, why }));
            }
        }
    }
    c.sort_by(|(ka, a), (kb, b)| {
        ka.cmp(kb)
            .then(b.proc.oom_score.cmp(&a.proc.oom_score))
            .then(b.proc.rss_kb.cmp(&a.proc.rss_kb))
            .then(a.proc.pid.cmp(&b.proc.pid))
    });
    (c.into_iter().map(|(_, p)| p).collect(), protected)
}

/// The victim and the runner-up; `None` when nobody may be chosen.
pub fn choose<'a>(table: &'a [Proc], ctx: &Context<'a>) -> Option<Choice<'a>> {
    let (r, protected) = ranked(table, ctx);
    let mut it = r.into_iter();
    Some(Choice {
        victim: it.next()?,
        runner_up: it.next(),
        protected,
    })
}

/// `PID NAME (unit U, rss N MiB, oom_score S)`.
pub fn describe(p: &Proc) -> String {
    format!(
        "{} {} (unit {}, rss {} MiB, oom_score {})",
        p.pid,
        p.name,
        p.unit().unwrap_or("none"),
        p.rss_kb / 1024,
        p.oom_score
    )
}

impl Choice<'_> {
    /// The log line's body: victim, unit, rss, the cgroup taken with it,
    /// why, runner-up.
    pub fn describe(&self, group: Option<&str>) -> String {
        let ru = match &self.runner_up {
            Some(r) => format!("{} by {}", describe(r.proc), r.why),
            None => "none".into(),
        };
        let whole = group
            .map(|g| format!(" with its cgroup {g}"))
            .unwrap_or_default();
        format!(
            "{}{whole} chosen by {}; runner-up {}",
            describe(self.victim.proc),
            self.victim.why,
            ru
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, name: &str, score: u32, rss_mb: u64) -> Proc {
        Proc {
            pid,
            ppid: 1,
            start_time: u64::from(pid) * 10,
            name: name.into(),
            exe: Some(format!("/usr/bin/{name}")),
            cmdline: name.into(),
            uid: 0,
            cgroup: Some(format!("/system.slice/{name}.service")),
            oom_score: score,
            oom_score_adj: 0,
            rss_kb: rss_mb * 1024,
            kthread: false,
        }
    }

    fn table() -> Vec<Proc> {
        let mut init = p(1, "systemd", 0, 10);
        init.cgroup = Some("/init.scope".into());
        let mut kt = p(2, "kthreadd", 0, 0);
        kt.kthread = true;
        let mut sshd = p(300, "sshd", 5, 8);
        sshd.oom_score_adj = -1000;
        vec![
            init,
            kt,
            sshd,
            p(400, "guard", 900, 2),
            p(500, "big", 800, 4000),
            p(600, "small", 100, 50),
            p(700, "db", 500, 2000),
            p(800, "web", 300, 500),
        ]
    }

    fn policy(text: &str) -> Policy {
        let mut pol = Policy::default();
        let bad = pol.add_file("policy.conf", text);
        assert!(bad.is_empty(), "{bad:?}");
        pol
    }

    fn pids(t: &[Proc], pol: &Policy, list: &[Listed]) -> Vec<u32> {
        let ctx = Context {
            guard_pid: 400,
            policy: pol,
            list,
        };
        ranked(t, &ctx).0.iter().map(|c| c.proc.pid).collect()
    }

    #[test]
    fn without_rules_the_kernel_score_decides_and_exclusions_hold() {
        let t = table();
        assert_eq!(pids(&t, &Policy::default(), &[]), vec![500, 700, 800, 600]);
    }

    #[test]
    fn a_preferred_small_process_dies_before_a_bigger_one() {
        let t = table();
        let pol = policy("prefer name=small\n");
        let ctx = Context {
            guard_pid: 400,
            policy: &pol,
            list: &[],
        };
        let c = choose(&t, &ctx).unwrap();
        assert_eq!(c.victim.proc.pid, 600);
        assert!(matches!(c.victim.why, Why::Rule(r) if r.text == "prefer name=small"));
        assert_eq!(c.runner_up.unwrap().proc.pid, 500);
        assert_eq!(c.runner_up.unwrap().why, Why::Score);
        let line = c.describe(None);
        assert!(
            line.starts_with("600 small (unit small.service, rss 50 MiB, oom_score 100) chosen by rule \"prefer name=small\" (policy.conf:1); runner-up 500 big"),
            "{line}"
        );
    }

    #[test]
    fn protected_and_avoided() {
        let t = table();
        let pol = policy("protect name=big\navoid unit=db.service\n");
        assert_eq!(pids(&t, &pol, &[]), vec![800, 600, 700]);
        let ctx = Context {
            guard_pid: 400,
            policy: &pol,
            list: &[],
        };
        assert_eq!(choose(&t, &ctx).unwrap().protected, 1);
    }

    #[test]
    fn the_run_time_list_comes_first_in_list_order() {
        let t = table();
        let pol = policy("prefer name=big\n");
        let list = [
            Listed::Unit("web.service".into()),
            Listed::Pid {
                pid: 600,
                start_time: Some(6000),
            },
            // A stale entry (pid reused by another process) and excluded ones
            // are passed over.
            Listed::Pid {
                pid: 700,
                start_time: Some(1),
            },
            Listed::Pid {
                pid: 1,
                start_time: None,
            },
            Listed::Pid {
                pid: 400,
                start_time: None,
            },
        ];
        assert_eq!(pids(&t, &pol, &list), vec![800, 600, 500, 700]);
    }

    #[test]
    fn a_protect_rule_beats_the_list() {
        let t = table();
        let pol = policy("protect name=web\n");
        let list = [Listed::Unit("web.service".into())];
        assert_eq!(pids(&t, &pol, &list), vec![500, 700, 600]);
    }

    #[test]
    fn ties_go_to_rss_then_the_lower_pid() {
        let t = vec![p(10, "a", 500, 1), p(11, "b", 500, 9), p(9, "c", 500, 1)];
        assert_eq!(pids(&t, &Policy::default(), &[]), vec![11, 9, 10]);
    }

    #[test]
    fn nobody_to_choose() {
        let t: Vec<Proc> = table().into_iter().take(4).collect();
        let pol = Policy::default();
        let ctx = Context {
            guard_pid: 400,
            policy: &pol,
            list: &[],
        };
        assert_eq!(choose(&t, &ctx), None);
        let mut one = table();
        one.truncate(5);
        let c = choose(&one, &ctx).unwrap();
        assert_eq!(c.runner_up, None);
        assert!(c.describe(None).ends_with("runner-up none"));
        assert!(c
            .describe(Some("/a.service"))
            .contains("oom_score 800) with its cgroup /a.service chosen by oom_score;"));
    }

    #[test]
    fn exclusions_name_their_reason() {
        let t = table();
        let pol = policy("protect name=web\n");
        let ctx = Context {
            guard_pid: 400,
            policy: &pol,
            list: &[],
        };
        let why: Vec<_> = t.iter().map(|x| excluded(x, &ctx)).collect();
        assert_eq!(why[0], Some(Exclusion::Init));
        assert_eq!(why[1], Some(Exclusion::KernelThread));
        assert_eq!(why[2], Some(Exclusion::Unkillable));
        assert_eq!(why[3], Some(Exclusion::Guard));
        assert_eq!(why[4], None);
        assert!(matches!(why[7], Some(Exclusion::Protected(_))));
    }
}
