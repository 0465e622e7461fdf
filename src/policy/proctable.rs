//! The process table from `/proc` (under the root): pure parsers for each
//! file beside the one function that reads them.
//!
//! Reads are capped and never block: procfs files of a process that exits
//! meanwhile just end the entry (the process is left out). They go through
//! crate::rootfs like every path under the root: a fake root's `proc` may
//! hold symlinks out of it, FIFOs or huge files (`status --root IMAGE`),
//! so only regular files are read, inside the root, and the `exe` link is
//! read with `readlinkat`, never followed.
#![forbid(unsafe_code)]

use super::Proc;
use crate::root::Root;
use crate::rootfs::{self, Dir};
use std::ffi::CString;

/// `PF_KTHREAD` in `/proc/PID/stat`'s flags.
const PF_KTHREAD: u64 = 0x0020_0000;
/// More of a command line than any rule needs.
pub const CMDLINE_CAP: usize = 4096;
const SMALL_CAP: usize = 4096;

/// What the chooser needs from `/proc/PID/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub name: String,
    pub state: char,
    pub ppid: u32,
    pub flags: u64,
    pub start_time: u64,
    pub rss_pages: u64,
}

/// `/proc/PID/stat`; the name is between the first `(` and the LAST `)`
/// (a name may hold `)` and spaces).
pub fn parse_stat(s: &str) -> Option<Stat> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let name = s.get(open + 1..close)?.to_string();
    let f: Vec<&str> = s.get(close + 1..)?.split_whitespace().collect();
    // f[0] is field 3 (state).
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        name,
        state: f.first()?.chars().next()?,
        ppid: u32::try_from(field(4)?).ok()?,
        flags: field(9)?,
        start_time: field(22)?,
        rss_pages: field(24)?,
    })
}

/// The real uid from `/proc/PID/status` (`Uid:\treal\teffective...`).
pub fn parse_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The cgroup v2 path (`0::/system.slice/x.service`).
pub fn parse_cgroup(s: &str) -> Option<String> {
    s.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end().to_string())
}

/// NUL-separated arguments joined by single spaces (the form rules match).
pub fn join_cmdline(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let parts: Vec<&str> = s.split('\0').filter(|a| !a.is_empty()).collect();
    parts.join(" ")
}

fn read_capped(dir: &Dir, name: &str, cap: usize) -> Option<Vec<u8>> {
    let name = CString::new(name).ok()?;
    Some(dir.read_head(&name, cap).ok()?.bytes)
}

fn read_str(dir: &Dir, name: &str) -> Option<String> {
    read_capped(dir, name, SMALL_CAP).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// `/proc/PID` under the root, opened inside it.
fn proc_dir(root: &Root, pid: u32) -> Option<Dir> {
    rootfs::open_dir(root, &format!("proc/{pid}")).ok()
}

/// The start time of `pid` (its `stat`), to tell it from a reused pid.
pub fn read_start(root: &Root, pid: u32) -> Option<u64> {
    parse_stat(&read_str(&proc_dir(root, pid)?, "stat")?).map(|s| s.start_time)
}

/// One process, or `None` when it is gone (or no process: a task
/// directory that vanished between the files is simply left out).
pub fn read_proc(root: &Root, pid: u32, page_kb: u64) -> Option<Proc> {
    let dir = proc_dir(root, pid)?;
    let st = parse_stat(&read_str(&dir, "stat")?)?;
    if st.state == 'Z' || st.state == 'X' {
        return None;
    }
    let num = |f: &str| read_str(&dir, f).and_then(|s| s.trim().parse::<i64>().ok());
    let exe = CString::new("exe")
        .ok()
        .and_then(|n| dir.read_link(&n).ok())
        .map(|p| {
            let s = String::from_utf8_lossy(&p).into_owned();
            s.strip_suffix(" (deleted)")
                .map(str::to_string)
                .unwrap_or(s)
        });
    Some(Proc {
        pid,
        ppid: st.ppid,
        start_time: st.start_time,
        kthread: st.flags & PF_KTHREAD != 0,
        rss_kb: st.rss_pages.saturating_mul(page_kb),
        name: st.name,
        exe,
        cmdline: join_cmdline(&read_capped(&dir, "cmdline", CMDLINE_CAP).unwrap_or_default()),
        uid: read_str(&dir, "status")
            .as_deref()
            .and_then(parse_uid)
            .unwrap_or(u32::MAX),
        cgroup: read_str(&dir, "cgroup").as_deref().and_then(parse_cgroup),
        oom_score: num("oom_score")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        oom_score_adj: num("oom_score_adj")
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(0),
    })
}

/// Every process under `root`'s `/proc`, by pid.
pub fn read_table(root: &Root, page_kb: u64) -> Vec<Proc> {
    let Ok(entries) = rootfs::open_dir(root, "proc").and_then(|d| d.entries()) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .into_iter()
        .filter_map(|(n, _)| std::str::from_utf8(&n).ok()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter()
        .filter_map(|pid| read_proc(root, pid, page_kb))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const STAT: &str = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 3 0 0 0 1 2 0 0 20 0 1 0 98765 12345678 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_with_a_hostile_name() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(s.name, "a) b (c)");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 17);
        assert_eq!(s.flags, 4194560);
        assert_eq!(s.start_time, 98765);
        assert_eq!(s.rss_pages, 300);
        assert_eq!(parse_stat("12 (x"), None);
        assert_eq!(parse_stat("12 (x) S"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn status_cgroup_cmdline() {
        assert_eq!(
            parse_uid("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t5\n"),
            Some(1000)
        );
        assert_eq!(parse_uid("Name:\tx\n"), None);
        assert_eq!(
            parse_cgroup("1:name=systemd:/x\n0::/system.slice/a.service\n").as_deref(),
            Some("/system.slice/a.service")
        );
        assert_eq!(parse_cgroup("1:cpu:/x\n"), None);
        assert_eq!(
            join_cmdline(b"python3\0leak.py\0--mb\x00100\0"),
            "python3 leak.py --mb 100"
        );
        assert_eq!(join_cmdline(b""), "");
    }

    fn fake_proc(root: &Path, pid: u32, stat: &str) {
        let d = root.join(format!("proc/{pid}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("stat"), stat).unwrap();
        std::fs::write(d.join("status"), "Uid:\t33\t33\t33\t33\n").unwrap();
        std::fs::write(d.join("cgroup"), "0::/system.slice/leak.service\n").unwrap();
        std::fs::write(d.join("cmdline"), b"leak\0--big\0").unwrap();
        std::fs::write(d.join("oom_score"), "812\n").unwrap();
        std::fs::write(d.join("oom_score_adj"), "-5\n").unwrap();
    }

    #[test]
    fn a_fake_proc_tree() {
        let dir = std::env::temp_dir().join(format!("oom-ext-proctable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        fake_proc(&dir, 4242, STAT);
        fake_proc(&dir, 7, &STAT.replace(" S ", " Z "));
        fake_proc(&dir, 2, &STAT.replace("4194560", "2129984"));
        std::fs::create_dir_all(dir.join("proc/self")).unwrap();
        std::fs::create_dir_all(dir.join("proc/99")).unwrap(); // gone meanwhile
        let t = read_table(&Root::new(&dir), 4);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(t[0].kthread && t[0].pid == 2);
        let p = &t[1];
        assert_eq!(
            (p.pid, p.ppid, p.uid, p.oom_score, p.oom_score_adj, p.rss_kb),
            (4242, 17, 33, 812, -5, 1200)
        );
        assert_eq!(p.cmdline, "leak --big");
        assert_eq!(p.unit(), Some("leak.service"));
        assert_eq!(p.exe, None);
        assert!(!p.kthread);
    }
}
