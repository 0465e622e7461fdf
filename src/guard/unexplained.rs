//! Rises of /proc/vmstat's `oom_kill` that no kill line in the kernel log
//! explains. The counter counts every OOM kill, a memory cgroup's (a
//! `MemoryMax=` unit at its limit) as well as the system's, so a rise alone
//! is no system OOM; but without its kernel line (a lost or unreadable
//! log) it is the only trace of one. The kernel counts a kill just before
//! it logs it (`__oom_kill_process`), so a rise read before its line gets
//! LINE_WAIT_MS for the line to arrive, then counts as unexplained.

#![forbid(unsafe_code)]

/// How long a rise waits for its kill line: the line follows the count at
/// once in the kernel, but the guard may read between the two.
pub const LINE_WAIT_MS: u64 = 200;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unexplained {
    /// Rises not matched by a kill line yet.
    pending: u64,
    /// When the oldest of them was read.
    since_ms: Option<u64>,
}

impl Unexplained {
    /// One reading: `rise` of the counter since the last one, `lines` kill
    /// lines (system or cgroup) read since then. A line is always read
    /// after its rise (the count comes first), so lines beyond the pending
    /// rises belong to rises counted already (at start, or unexplained
    /// after the wait) and are dropped. `can_wait`: a kill line can still
    /// come (the kernel log is read). Returns how many rises are
    /// unexplained now.
    pub fn reading(&mut self, rise: u64, lines: u64, now_ms: u64, can_wait: bool) -> u64 {
        self.pending = self.pending.saturating_add(rise).saturating_sub(lines);
        if self.pending == 0 {
            self.since_ms = None;
            return 0;
        }
        if lines > 0 {
            // Lines explain the oldest rises first: the rest are newer,
            // read by now at the latest.
            self.since_ms = Some(now_ms);
        }
        let since = *self.since_ms.get_or_insert(now_ms);
        if can_wait && now_ms < since + LINE_WAIT_MS {
            return 0;
        }
        self.since_ms = None;
        std::mem::take(&mut self.pending)
    }

    /// When the pending rises stop waiting (None: nothing waits, no timer).
    pub fn deadline(&self) -> Option<u64> {
        self.since_ms.map(|t| t + LINE_WAIT_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rise_with_its_line_in_the_same_reading_is_explained() {
        let mut u = Unexplained::default();
        assert_eq!(u.reading(1, 1, 1000, true), 0);
        assert_eq!(u.deadline(), None);
        assert_eq!(u.reading(3, 2, 1000, true), 0);
        assert_eq!(u.deadline(), Some(1200));
        // The third line comes a reading later, with a new rise whose line
        // has not: that one waits from this reading on.
        assert_eq!(u.reading(1, 1, 1150, true), 0);
        assert_eq!(u.deadline(), Some(1350));
        assert_eq!(u.reading(0, 1, 1300, true), 0);
        assert_eq!(u.deadline(), None);
    }

    #[test]
    fn a_rise_without_a_line_counts_after_the_wait_and_only_once() {
        let mut u = Unexplained::default();
        assert_eq!(u.reading(1, 0, 1000, true), 0);
        assert_eq!(u.deadline(), Some(1000 + LINE_WAIT_MS));
        // A later rise does not push the oldest one's deadline out.
        assert_eq!(u.reading(1, 0, 1150, true), 0);
        assert_eq!(u.deadline(), Some(1200));
        assert_eq!(u.reading(0, 0, 1199, true), 0);
        assert_eq!(u.reading(0, 0, 1200, true), 2);
        assert_eq!(u.deadline(), None);
        assert_eq!(u.reading(0, 0, 1300, true), 0);
        // Its line, late: dropped, it explains no later rise.
        assert_eq!(u.reading(0, 1, 1400, true), 0);
        assert_eq!(u.reading(1, 0, 1500, true), 0);
        assert_eq!(u.reading(0, 0, 1700, true), 1);
    }

    #[test]
    fn without_the_kernel_log_a_rise_counts_at_once() {
        let mut u = Unexplained::default();
        assert_eq!(u.reading(2, 0, 1000, false), 2);
        assert_eq!(u.deadline(), None);
    }
}
