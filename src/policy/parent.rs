//! Kill the parent that keeps producing bad children (seed 002's
//! `oom_kill_parent`, with its `oom_parent_max` and `oom_parent_expire`).
//! Pure: the guard tells it each OOM victim's parent, captured while the
//! victim still existed, and it says when a parent has had enough.
//!
//! As in the seed, a parent is forgiven when `expire` passes without a new
//! victim among its children; at `max` victims it is due. `max = 0` turns
//! this off. At most [`MAX_PARENTS`] parents are remembered (the oldest is
//! forgotten first), as the seed's 32-slot table.
#![forbid(unsafe_code)]

use super::rank::{excluded, Context};
use super::Proc;

pub const MAX_PARENTS: usize = 32;

/// A parent, by pid and start time (a later process with its pid is
/// someone else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentId {
    pub pid: u32,
    pub start_time: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    id: ParentId,
    count: u32,
    last_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parents {
    pub max: u32,
    pub expire_ms: u64,
    records: Vec<Record>,
}

/// Never blamed: a service manager (PID 1 and `systemd --user`) or
/// anything the victim chooser may not take either.
pub fn blameable(parent: &Proc, ctx: &Context<'_>) -> bool {
    let manager = parent.name == "systemd" || parent.name.starts_with("(sd-");
    !manager && excluded(parent, ctx).is_none()
}

impl Parents {
    pub fn new(max: u32, expire_s: u32) -> Parents {
        Parents {
            max,
            expire_ms: u64::from(expire_s) * 1000,
            records: Vec::new(),
        }
    }

    /// One more victim among `parent`'s children at `now_ms`; `true` when
    /// the parent is now due to be killed (its record is then dropped).
    pub fn victim_of(&mut self, parent: ParentId, now_ms: u64) -> bool {
        if self.max == 0 {
            return false;
        }
        let expire = self.expire_ms;
        self.records
            .retain(|r| now_ms.saturating_sub(r.last_ms) < expire || expire == 0);
        let i = match self.records.iter().position(|r| r.id == parent) {
            Some(i) => i,
            None => {
                if self.records.len() >= MAX_PARENTS {
                    self.records.remove(0);
                }
                self.records.push(Record {
                    id: parent,
                    count: 0,
                    last_ms: now_ms,
                });
                self.records.len() - 1
            }
        };
        let r = &mut self.records[i];
        r.count += 1;
        r.last_ms = now_ms;
        let due = r.count >= self.max;
        if due {
            self.records.remove(i);
        }
        due
    }

    /// Victims counted against `parent` so far (for logs and status).
    pub fn count(&self, parent: ParentId) -> u32 {
        self.records
            .iter()
            .find(|r| r.id == parent)
            .map_or(0, |r| r.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::Policy;

    const A: ParentId = ParentId {
        pid: 100,
        start_time: 5,
    };
    const B: ParentId = ParentId {
        pid: 200,
        start_time: 7,
    };

    #[test]
    fn off_by_default() {
        let mut p = Parents::new(0, 300);
        assert!(!(0..100).any(|i| p.victim_of(A, i)));
    }

    #[test]
    fn due_at_max_victims_within_expire_and_a_sibling_is_not() {
        let mut p = Parents::new(3, 60);
        assert!(!p.victim_of(A, 0));
        assert!(!p.victim_of(B, 1000));
        assert!(!p.victim_of(A, 20_000));
        assert_eq!(p.count(A), 2);
        assert!(p.victim_of(A, 40_000));
        assert_eq!(p.count(A), 0);
        assert_eq!(p.count(B), 1);
    }

    #[test]
    fn forgiven_after_expire_without_victims() {
        let mut p = Parents::new(2, 10);
        assert!(!p.victim_of(A, 0));
        assert!(!p.victim_of(A, 10_000));
        assert!(p.victim_of(A, 19_999));
    }

    #[test]
    fn a_reused_pid_is_another_parent() {
        let mut p = Parents::new(2, 60);
        assert!(!p.victim_of(A, 0));
        let again = ParentId {
            pid: A.pid,
            start_time: 99,
        };
        assert!(!p.victim_of(again, 1));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut p = Parents::new(2, 0);
        for pid in 0..100 {
            p.victim_of(ParentId { pid, start_time: 0 }, 0);
        }
        assert_eq!(p.records.len(), MAX_PARENTS);
    }

    #[test]
    fn service_managers_and_excluded_parents_are_never_blamed() {
        let pol = Policy::default();
        let ctx = Context {
            guard_pid: 50,
            policy: &pol,
            list: &[],
        };
        let mut parent = Proc {
            pid: 100,
            name: "bash".into(),
            rss_kb: 10,
            ..Proc::default()
        };
        assert!(blameable(&parent, &ctx));
        parent.name = "systemd".into();
        assert!(!blameable(&parent, &ctx));
        parent.name = "bash".into();
        parent.oom_score_adj = -1000;
        assert!(!blameable(&parent, &ctx));
        parent.oom_score_adj = 0;
        parent.pid = 50;
        assert!(!blameable(&parent, &ctx));
    }
}
