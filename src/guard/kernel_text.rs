//! Pure parsers for the OOM killer's kernel-log line and /proc/vmstat,
//! /proc/meminfo figures the guard needs.

#![forbid(unsafe_code)]

use crate::flag::Victim;

/// Parses one `/dev/kmsg` record (`prio,seq,usec,flags;message`) or a bare
/// message for `Out of memory: Killed process PID (COMM) ... anon-rss:NkB`.
pub fn parse_kill(record: &str) -> Option<Victim> {
    let msg = match record.split_once(';') {
        Some((head, msg)) if head.split(',').count() >= 3 => msg,
        _ => record,
    };
    let msg = msg.lines().next()?;
    let rest = msg.strip_prefix("Out of memory: Killed process ")?;
    let (pid, rest) = rest.split_once(" (")?;
    let pid: u32 = pid.parse().ok()?;
    // COMM may itself hold ") ", so cut at the last ") total-vm:".
    let end = rest.rfind(") total-vm:").or_else(|| rest.rfind(')'))?;
    let comm = &rest[..end];
    let rss_kb = rest[end..]
        .split_once("anon-rss:")
        .and_then(|(_, r)| r.split("kB").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    Some(Victim {
        pid,
        comm: comm.to_string(),
        rss_kb,
    })
}

/// `oom_kill N` from /proc/vmstat.
pub fn vmstat_oom_kill(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix("oom_kill ")
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Pages freed minus pages allocated since boot (`pgfree` minus every
/// `pgalloc_*` in /proc/vmstat): between two readings, how much free
/// memory grew, counting the per-CPU lists that MemFree and MemAvailable
/// leave out (a dying process's pages land there first).
pub fn vmstat_net_freed_pages(text: &str) -> Option<i64> {
    let mut freed = None;
    let mut allocated: u64 = 0;
    for l in text.lines() {
        let Some((key, value)) = l.split_once(' ') else {
            continue;
        };
        let Ok(n) = value.trim().parse::<u64>() else {
            continue;
        };
        if key == "pgfree" {
            freed = Some(n);
        } else if key.starts_with("pgalloc_") {
            allocated = allocated.wrapping_add(n);
        }
    }
    freed.map(|f| f.wrapping_sub(allocated) as i64)
}

/// `pswpout N` from /proc/vmstat: pages written to swap since boot.
pub fn vmstat_pswpout(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("pswpout "))
        .and_then(|v| v.trim().parse().ok())
}

/// `MemAvailable:  N kB` from /proc/meminfo.
pub fn mem_available_kb(text: &str) -> Option<u64> {
    meminfo_kb(text, "MemAvailable:")
}

/// `MemTotal:  N kB` from /proc/meminfo.
pub fn mem_total_kb(text: &str) -> Option<u64> {
    meminfo_kb(text, "MemTotal:")
}

/// `SwapFree:  N kB` from /proc/meminfo.
pub fn swap_free_kb(text: &str) -> Option<u64> {
    meminfo_kb(text, "SwapFree:")
}

/// The `total=` of the `full` line of /proc/pressure/memory, µs.
pub fn psi_full_total_us(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("full "))?
        .split_whitespace()
        .find_map(|w| w.strip_prefix("total="))?
        .parse()
        .ok()
}

fn meminfo_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().strip_suffix("kB").unwrap_or(v).trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_full_total_and_swap_free() {
        let psi = "some avg10=1.00 avg60=0.50 avg300=0.10 total=123456\nfull avg10=0.50 avg60=0.20 avg300=0.05 total=65432\n";
        assert_eq!(psi_full_total_us(psi), Some(65432));
        assert_eq!(
            psi_full_total_us("some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n"),
            None
        );
        assert_eq!(psi_full_total_us("full avg10=0.00 total=x\n"), None);
        assert_eq!(
            swap_free_kb("SwapTotal: 262140 kB\nSwapFree:  131072 kB\n"),
            Some(131072)
        );
    }

    #[test]
    fn net_freed_pages_from_vmstat() {
        let t = "nr_free_pages 2940\npgalloc_dma 100\npgalloc_dma32 5000\npgalloc_normal 0\npgalloc_movable 0\npgfree 5300\noom_kill 3\n";
        assert_eq!(vmstat_net_freed_pages(t), Some(200));
        // Less freed than allocated: negative, not a wrapped huge number.
        let t = "pgalloc_dma32 5000\npgfree 4000\n";
        assert_eq!(vmstat_net_freed_pages(t), Some(-1000));
        assert_eq!(vmstat_net_freed_pages("pgalloc_dma32 5\n"), None);
        assert_eq!(vmstat_net_freed_pages("pgfree x\npgfree\n"), None);
    }

    #[test]
    fn pswpout_from_vmstat() {
        assert_eq!(
            vmstat_pswpout("pswpin 7\npswpout 4096\noom_kill 0\n"),
            Some(4096)
        );
        assert_eq!(vmstat_pswpout("pswpout_x 5\npswpin 7\n"), None);
        assert_eq!(vmstat_pswpout("pswpout -1\n"), None);
    }

    #[test]
    fn kill_lines_from_6_1_and_6_12() {
        let r = "3,1234,56789012,-;Out of memory: Killed process 4242 (stress-ng-vm) total-vm:528388kB, anon-rss:401232kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:832kB oom_score_adj:1000\n SUBSYSTEM=x";
        assert_eq!(
            parse_kill(r),
            Some(Victim {
                pid: 4242,
                comm: "stress-ng-vm".into(),
                rss_kb: 401232
            })
        );
        let hostile = "Out of memory: Killed process 9 (a) total-vm:1kB b) total-vm:2kB, anon-rss:77kB, file-rss:0kB";
        assert_eq!(
            parse_kill(hostile),
            Some(Victim {
                pid: 9,
                comm: "a) total-vm:1kB b".into(),
                rss_kb: 77
            })
        );
        assert_eq!(
            parse_kill("6,1,2,-;Memory cgroup out of memory: Killed process 1 (x) total-vm:1kB"),
            None
        );
        assert_eq!(parse_kill("Out of memory: Killed process x (y)"), None);
        assert_eq!(
            parse_kill("Out of memory: Killed process 99999999999 (y)"),
            None
        );
        assert_eq!(parse_kill(""), None);
        assert_eq!(
            parse_kill("Out of memory: Killed process 5 (z)"),
            Some(Victim {
                pid: 5,
                comm: "z".into(),
                rss_kb: 0
            })
        );
    }

    #[test]
    fn vmstat_and_meminfo() {
        assert_eq!(vmstat_oom_kill("nr_free_pages 5\noom_kill 3\n"), Some(3));
        assert_eq!(vmstat_oom_kill("oom_killx 3\n"), None);
        assert_eq!(
            mem_available_kb("MemTotal: 1 kB\nMemAvailable:     123456 kB\n"),
            Some(123456)
        );
        assert_eq!(mem_available_kb("MemAvailable: lots\n"), None);
        assert_eq!(
            mem_total_kb("MemTotal:  468404 kB\nMemFree: 1 kB\n"),
            Some(468404)
        );
    }
}
