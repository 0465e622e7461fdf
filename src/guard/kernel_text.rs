//! Pure parsers for the OOM killer's kernel-log line and /proc/vmstat,
//! /proc/meminfo figures the guard needs.

#![forbid(unsafe_code)]

use crate::flag::Victim;

/// Whose limit an OOM kill was for: the whole machine's, or a memory
/// cgroup's (`memory.max`, systemd's `MemoryMax=`): the kernel logs those
/// as `Memory cgroup out of memory: Killed process ...`, the OOM notifier
/// (the module) never sees them, and they are no system OOM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    System,
    Memcg,
}

/// The message of a `/dev/kmsg` record (`prio,seq,usec,flags;message`,
/// continuation lines cut), or a bare message as it is.
fn message(record: &str) -> Option<&str> {
    let msg = match record.split_once(';') {
        Some((head, msg)) if head.split(',').count() >= 3 => msg,
        _ => record,
    };
    msg.lines().next()
}

/// The OOM killer's kill line, `MESSAGE: Killed process PID (COMM)
/// total-vm:... anon-rss:NkB ...` (`__oom_kill_process`, mm/oom_kill.c,
/// the same on 6.1 and 6.12), and whose OOM it was: MESSAGE is `Out of
/// memory`, `Out of memory (oom_kill_allocating_task)` or `Memory cgroup
/// out of memory`.
pub fn parse_kill(record: &str) -> Option<(Scope, Victim)> {
    let msg = message(record)?;
    let (what, rest) = msg.split_once(": Killed process ")?;
    let scope = match what {
        "Out of memory" | "Out of memory (oom_kill_allocating_task)" => Scope::System,
        "Memory cgroup out of memory" => Scope::Memcg,
        _ => return None,
    };
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
    Some((
        scope,
        Victim {
            pid,
            comm: comm.to_string(),
            rss_kb,
            cgroup: None,
        },
    ))
}

/// The one-line summary the OOM killer prints before a kill
/// (`dump_oom_summary`; rate-limited with the rest of the dump, so it may
/// be missing): `oom-kill:constraint=C,nodemask=...,cpuset=...,
/// mems_allowed=...,oom_memcg=PATH,task_memcg=PATH,task=COMM,pid=N,uid=N`
/// (`global_oom` instead of `oom_memcg=PATH` for a system OOM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// `constraint=CONSTRAINT_MEMCG`.
    pub memcg: bool,
    /// The cgroup whose limit was hit.
    pub oom_memcg: Option<String>,
    /// The victim's memory cgroup (`task_memcg=`).
    pub task_memcg: Option<String>,
    /// The victim's pid.
    pub pid: u32,
}

pub fn parse_context(record: &str) -> Option<Context> {
    let rest = message(record)?.strip_prefix("oom-kill:constraint=")?;
    let memcg = rest.split(',').next()? == "CONSTRAINT_MEMCG";
    // The victim's fields from the end: COMM and the cgroup paths may hold
    // commas, and so may nodemask and mems_allowed lists.
    let (head, uid) = rest.rsplit_once(",uid=")?;
    uid.parse::<u32>().ok()?;
    let (head, pid) = head.rsplit_once(",pid=")?;
    let pid = pid.parse().ok()?;
    let (head, _task) = head.rsplit_once(",task=")?;
    let task_memcg = head
        .rsplit_once(",task_memcg=")
        .map(|(_, m)| m.to_string())
        .filter(|m| crate::flag::valid_cgroup(m));
    let oom_memcg = head.split_once(",oom_memcg=").map(|(_, m)| {
        m.rsplit_once(",task_memcg=")
            .map_or(m, |(m, _)| m)
            .to_string()
    });
    Some(Context {
        memcg,
        oom_memcg,
        task_memcg,
        pid,
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

    fn victim(pid: u32, comm: &str, rss_kb: u64) -> Victim {
        Victim {
            pid,
            comm: comm.into(),
            rss_kb,
            cgroup: None,
        }
    }

    #[test]
    fn kill_lines_from_6_1_and_6_12() {
        let r = "3,1234,56789012,-;Out of memory: Killed process 4242 (stress-ng-vm) total-vm:528388kB, anon-rss:401232kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:832kB oom_score_adj:1000\n SUBSYSTEM=x";
        assert_eq!(
            parse_kill(r),
            Some((Scope::System, victim(4242, "stress-ng-vm", 401232)))
        );
        let hostile = "Out of memory: Killed process 9 (a) total-vm:1kB b) total-vm:2kB, anon-rss:77kB, file-rss:0kB";
        assert_eq!(
            parse_kill(hostile),
            Some((Scope::System, victim(9, "a) total-vm:1kB b", 77)))
        );
        assert_eq!(
            parse_kill("Out of memory (oom_kill_allocating_task): Killed process 7 (cc1) total-vm:9kB, anon-rss:5kB, file-rss:0kB"),
            Some((Scope::System, victim(7, "cc1", 5)))
        );
        assert_eq!(parse_kill("Out of memory: Killed process x (y)"), None);
        assert_eq!(
            parse_kill("Out of memory: Killed process 99999999999 (y)"),
            None
        );
        assert_eq!(parse_kill(""), None);
        assert_eq!(
            parse_kill("Out of memory and no killable processes..."),
            None
        );
        assert_eq!(
            parse_kill("Memory cgroup out of memory: OOM victim 5 (z) is already exiting. Skip killing the task"),
            None
        );
        assert_eq!(
            parse_kill("Not out of memory: Killed process 5 (z) total-vm:1kB"),
            None
        );
        assert_eq!(
            parse_kill("Out of memory: Killed process 5 (z)"),
            Some((Scope::System, victim(5, "z", 0)))
        );
    }

    /// As the VM suite's `fallback` scenario saw them (dmesg, 2026-12-02):
    /// a stress-ng hog under `MemoryMax=64M`.
    const MEMCG_6_1: [&str; 2] = [
        "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/memhog.service,task_memcg=/system.slice/memhog.service,task=stress-ng-vm,pid=413,uid=0",
        "Memory cgroup out of memory: Killed process 413 (stress-ng-vm) total-vm:323084kB, anon-rss:62312kB, file-rss:312kB, shmem-rss:0kB, UID:0 pgtables:196kB oom_score_adj:1000",
    ];
    const MEMCG_6_12: [&str; 2] = [
        "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/memhog.service,task_memcg=/system.slice/memhog.service,task=stress-ng-vm,pid=466,uid=0",
        "Memory cgroup out of memory: Killed process 466 (stress-ng-vm) total-vm:323084kB, anon-rss:62448kB, file-rss:380kB, shmem-rss:0kB, UID:0 pgtables:188kB oom_score_adj:1000",
    ];

    #[test]
    fn memcg_kill_lines_from_6_1_and_6_12() {
        for ([context, kill], pid, rss_kb) in [(MEMCG_6_1, 413, 62312), (MEMCG_6_12, 466, 62448)] {
            assert_eq!(
                parse_kill(kill),
                Some((Scope::Memcg, victim(pid, "stress-ng-vm", rss_kb)))
            );
            // As /dev/kmsg hands it over.
            let record = format!("3,912,81234567,-;{kill}");
            assert_eq!(parse_kill(&record).map(|k| k.0), Some(Scope::Memcg));
            assert_eq!(
                parse_context(context),
                Some(Context {
                    memcg: true,
                    oom_memcg: Some("/system.slice/memhog.service".into()),
                    task_memcg: Some("/system.slice/memhog.service".into()),
                    pid
                })
            );
            assert_eq!(parse_kill(context), None);
            assert_eq!(parse_context(kill), None);
        }
    }

    #[test]
    fn oom_context_lines() {
        let memcg = "6,911,81234560,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/memhog.service,task_memcg=/system.slice/memhog.service,task=stress-ng-vm,pid=1234,uid=0";
        assert_eq!(
            parse_context(memcg),
            Some(Context {
                memcg: true,
                oom_memcg: Some("/system.slice/memhog.service".into()),
                task_memcg: Some("/system.slice/memhog.service".into()),
                pid: 1234
            })
        );
        let global = "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/hog.service,task=stress-ng-vm,pid=77,uid=0";
        assert_eq!(
            parse_context(global),
            Some(Context {
                memcg: false,
                oom_memcg: None,
                task_memcg: Some("/system.slice/hog.service".into()),
                pid: 77
            })
        );
        // Commas in node lists, cgroup names and COMM.
        let commas = "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=0-2,4,cpuset=/a,b,mems_allowed=0,2-4,oom_memcg=/x,y,task_memcg=/x,y/z,task=a,pid=1,b,pid=10,uid=1000";
        assert_eq!(
            parse_context(commas),
            Some(Context {
                memcg: true,
                oom_memcg: Some("/x,y".into()),
                task_memcg: Some("/x,y/z".into()),
                pid: 10
            })
        );
        assert_eq!(parse_context("oom-kill:constraint=CONSTRAINT_MEMCG"), None);
        assert_eq!(
            parse_context("oom-kill:constraint=X,task=a,pid=x,uid=0"),
            None
        );
        assert_eq!(parse_context("oom_reaper: reaped process 1 (a)"), None);
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
