//! The kernel's own OOM kills follow the rules too: `oom_score_adj` of the
//! processes a rule matches is brought in line with it, so that when the
//! kernel chooses (a real OOM, sysrq `f`) it leans the same way.
//!
//! | rule | oom_score_adj |
//! |---|---|
//! | `prefer` | raised to at least +500 |
//! | `avoid` | lowered to at most -500 |
//! | `protect` | lowered to -999: the kernel takes it only when nothing else is left |
//! | `default`, none | left alone |
//!
//! Never touched: what the chooser never takes either (PID 1, kernel
//! threads, the guard) and a process at -1000, whose owner said "never"
//! already. Done at start, on SIGHUP and when a stall begins (never on a
//! timer: a calm machine is not scanned).
#![forbid(unsafe_code)]

use super::rank::{excluded, Context, Exclusion};
use super::rules::Verb;
use super::Proc;

pub const PREFER_ADJ: i32 = 500;
pub const AVOID_ADJ: i32 = -500;
pub const PROTECT_ADJ: i32 = -999;

/// The value `p`'s oom_score_adj should have, if it should change.
pub fn target(p: &Proc, ctx: &Context<'_>) -> Option<i32> {
    match excluded(p, ctx) {
        None | Some(Exclusion::Protected(_)) => {}
        Some(_) => return None,
    }
    let want = match ctx.policy.rule_for(p)?.verb {
        Verb::Prefer => p.oom_score_adj.max(PREFER_ADJ),
        Verb::Avoid => p.oom_score_adj.min(AVOID_ADJ),
        Verb::Protect => PROTECT_ADJ,
        Verb::Default => return None,
    };
    (want != p.oom_score_adj).then_some(want)
}

/// Every change to make: (pid, start time, from, to).
pub fn changes(table: &[Proc], ctx: &Context<'_>) -> Vec<(u32, u64, i32, i32)> {
    table
        .iter()
        .filter_map(|p| target(p, ctx).map(|t| (p.pid, p.start_time, p.oom_score_adj, t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::Policy;

    fn p(pid: u32, name: &str, adj: i32) -> Proc {
        Proc {
            pid,
            name: name.into(),
            oom_score_adj: adj,
            rss_kb: 100,
            ..Proc::default()
        }
    }

    #[test]
    fn rules_move_oom_score_adj_one_way_only() {
        let mut pol = Policy::default();
        assert!(pol
            .add_file(
                "p.conf",
                "prefer name=a*\navoid name=b*\nprotect name=c*\ndefault name=a2\n"
            )
            .is_empty());
        let ctx = Context {
            guard_pid: 9,
            policy: &pol,
            list: &[],
        };
        let t = vec![
            p(10, "a1", 0),
            p(11, "a2", 0),
            p(12, "a3", 800),
            p(13, "b1", 100),
            p(14, "b2", -700),
            p(15, "c1", 300),
            p(16, "c2", -1000),
            p(9, "a-guard", 0),
            p(1, "a-init", 0),
            p(17, "other", 0),
        ];
        let got: Vec<(u32, i32)> = changes(&t, &ctx).iter().map(|c| (c.0, c.3)).collect();
        assert_eq!(got, vec![(10, 500), (13, -500), (15, -999)]);
    }
}
