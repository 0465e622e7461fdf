//! `oom-ext report`: on the next boot, reports a crash flag left by an OOM
//! hang (human text, JSON, one log line), archives it, runs the hooks in
//! /etc/oom-ext/report.d and removes the flag. Hostile flags (symlink, FIFO,
//! huge, binary) are reported as such and never followed or trusted.

use crate::flag::{self, Damage, FlagData, READ_MAX};
use crate::json::{self, Object};
use crate::log::{iso8601, unix_now, Log};
use crate::params::Params;
use crate::root::Root;
use crate::{cmdline, paths};
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const HISTORY_KEEP: usize = 20;
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Exit codes (documented in oom-ext(8)).
pub const EXIT_NONE: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_REPORTED: i32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Ok,
    /// Not a flag of ours (first line is not `oom_ext_flag=1`).
    Corrupt,
    /// NUL bytes or not UTF-8.
    Binary,
    /// Larger than 64 KiB; only the start was read.
    Huge,
    /// A symlink: never followed.
    Symlink(String),
    /// FIFO, socket, device or directory: never opened.
    Special(&'static str),
}

impl Kind {
    pub fn word(&self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Corrupt => "corrupt",
            Kind::Binary => "binary",
            Kind::Huge => "huge",
            Kind::Symlink(_) => "symlink",
            Kind::Special(_) => "special",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    /// The flag path as configured (absolute, without the root).
    pub flag: String,
    pub kind: Kind,
    pub size: u64,
    pub mtime: Option<u64>,
    pub data: Option<FlagData>,
    pub reported_unix: u64,
}

/// Flag paths to look at, in order: this boot's effective parameters, the
/// command line, the default.
pub fn candidates(root: &Root) -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(t) = std::fs::read_to_string(root.join(paths::PARAMS)) {
        v.push(Params::from_file(&t).0.crashflag_name);
    }
    if let Ok(t) = std::fs::read_to_string(root.join(paths::CMDLINE)) {
        v.push(cmdline::parse(&t).0.crashflag_name);
    }
    v.push(crate::params::DEFAULT_FLAG.to_string());
    let mut out: Vec<String> = Vec::new();
    for c in v {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

fn special_kind(ft: &std::fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "device"
    } else if ft.is_dir() {
        "directory"
    } else {
        "unknown file type"
    }
}

/// Looks at the flag without following links or blocking on FIFOs.
pub fn inspect(root: &Root, flag: &str, now: u64) -> std::io::Result<Option<Report>> {
    let path = root.join(flag);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut r = Report {
        flag: flag.to_string(),
        kind: Kind::Ok,
        size: meta.len(),
        mtime: Some(meta.mtime().max(0) as u64),
        data: None,
        reported_unix: now,
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(&path)
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "?".into());
        r.kind = Kind::Symlink(target);
        return Ok(Some(r));
    }
    if !ft.is_file() {
        r.kind = Kind::Special(special_kind(&ft));
        return Ok(Some(r));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)?;
    let m2 = f.metadata()?;
    if !m2.file_type().is_file() || m2.ino() != meta.ino() {
        r.kind = Kind::Special("file replaced while reading");
        return Ok(Some(r));
    }
    let mut bytes = Vec::new();
    f.take(READ_MAX as u64 + 1).read_to_end(&mut bytes)?;
    let huge = bytes.len() > READ_MAX;
    if huge {
        bytes.truncate(READ_MAX);
        // Do not cut a UTF-8 character or a line in two.
        if let Some(nl) = bytes.iter().rposition(|&b| b == b'\n') {
            bytes.truncate(nl + 1);
        }
    }
    match flag::parse(&bytes) {
        Ok(d) => {
            r.data = Some(d);
            r.kind = if huge { Kind::Huge } else { Kind::Ok };
        }
        Err(Damage::Binary) => r.kind = Kind::Binary,
        Err(Damage::NotAFlag) => r.kind = if huge { Kind::Huge } else { Kind::Corrupt },
    }
    Ok(Some(r))
}

impl Report {
    fn started(&self) -> Option<u64> {
        self.data.as_ref().and_then(|d| d.get_u64("started_unix"))
    }

    /// At least this long: from the start to the flag's last write.
    pub fn lasted_s(&self) -> Option<u64> {
        match (self.started(), self.mtime) {
            (Some(s), Some(m)) if m >= s => Some(m - s),
            _ => None,
        }
    }

    fn gracetime_reboot(&self) -> bool {
        self.data
            .as_ref()
            .and_then(|d| d.get("gracetime_reboot"))
            .is_some()
    }

    fn problem(&self) -> Option<String> {
        match &self.kind {
            Kind::Ok => None,
            Kind::Corrupt => {
                Some("not an oom_ext flag (no oom_ext_flag=1 line): content not trusted".into())
            }
            Kind::Binary => Some("binary content (NUL bytes or not UTF-8): not trusted".into()),
            Kind::Huge => Some(format!(
                "{} bytes, over 64 KiB: only the start was read",
                self.size
            )),
            Kind::Symlink(t) => Some(format!(
                "a symlink to {}: not followed",
                cmdline::escape_value(t)
            )),
            Kind::Special(what) => Some(format!("a {what}, not a regular file: not opened")),
        }
    }

    /// One structured log line.
    pub fn log_line(&self) -> String {
        let d = self.data.as_ref();
        let get = |k: &str| {
            d.and_then(|d| d.get(k))
                .map(cmdline::escape_value)
                .unwrap_or_else(|| "?".into())
        };
        let mut s = format!(
            "previous boot hit an OOM hang: flag={} status={} started={} lasted_s={} source={} kernel={} boot_id={} victims={}",
            cmdline::escape_value(&self.flag),
            self.kind.word(),
            self.started().map(iso8601).unwrap_or_else(|| "?".into()),
            self.lasted_s().map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
            get("source"),
            get("kernel"),
            get("boot_id"),
            d.map(|d| d.victims.len()).unwrap_or(0)
        );
        if self.gracetime_reboot() {
            s.push_str(" gracetime_reboot=1");
        }
        if let Some(p) = self.problem() {
            let _ = write!(s, " problem=\"{p}\"");
        }
        s
    }

    pub fn human(&self) -> String {
        let mut s = String::new();
        let esc = cmdline::escape_value;
        match self.problem() {
            Some(p) if self.data.is_none() => {
                let _ = writeln!(
                    s,
                    "oom-ext: found a crash flag at {} that cannot be trusted: {p}",
                    esc(&self.flag)
                );
                return s;
            }
            _ => {}
        }
        let d = self.data.clone().unwrap_or_default();
        let _ = writeln!(s, "oom-ext: the previous boot hit an OOM hang");
        let _ = writeln!(
            s,
            "  flag:        {} ({} bytes)",
            esc(&self.flag),
            self.size
        );
        if let Some(p) = self.problem() {
            let _ = writeln!(s, "  warning:     {p}");
        }
        match self.started() {
            Some(t) => {
                let boot = d
                    .get("started_boot_s")
                    .map(|b| format!(" ({} s after boot)", esc(b)))
                    .unwrap_or_default();
                let _ = writeln!(s, "  started:     {}{boot}", iso8601(t));
            }
            None => {
                let _ = writeln!(s, "  started:     unknown");
            }
        }
        if let Some(l) = self.lasted_s() {
            let _ = writeln!(
                s,
                "  lasted:      at least {l} s (until the flag was last written)"
            );
        }
        let field = |k: &str| d.get(k).map(esc).unwrap_or_else(|| "unknown".into());
        let _ = writeln!(s, "  source:      {}", field("source"));
        let _ = writeln!(s, "  kernel:      {}", field("kernel"));
        let _ = writeln!(s, "  boot id:     {}", field("boot_id"));
        let _ = writeln!(
            s,
            "  oom events:  {}, oom calls: {}",
            field("oom_events"),
            field("oom_calls")
        );
        if let Some(kb) = d.get_u64("mem_available_kb") {
            let _ = writeln!(s, "  available:   {kb} kB when it started");
        }
        let _ = writeln!(
            s,
            "  ended by:    {}",
            if self.gracetime_reboot() {
                "gracetime reboot"
            } else {
                "reset, power loss or panic (the flag was never removed)"
            }
        );
        let _ = writeln!(s, "  victims:     {}", d.victims.len());
        for v in &d.victims {
            let _ = writeln!(
                s,
                "    pid {} {} anon-rss {} kB",
                v.pid,
                esc(&v.comm),
                v.rss_kb
            );
        }
        if d.bad_lines > 0 {
            let _ = writeln!(s, "  ({} unreadable lines skipped)", d.bad_lines);
        }
        s
    }

    pub fn json(&self) -> String {
        let d = self.data.as_ref();
        let get = |k: &str| d.and_then(|d| d.get(k));
        let fields = d
            .map(|d| {
                d.fields
                    .iter()
                    .fold(Object::new(), |o, (k, v)| o.str(k, v))
                    .finish()
            })
            .unwrap_or_else(|| "null".into());
        let victims = json::array(d.map(|d| d.victims.clone()).unwrap_or_default().iter().map(
            |v| {
                Object::new()
                    .num("pid", u64::from(v.pid))
                    .str("comm", &v.comm)
                    .num("rss_kb", v.rss_kb)
                    .finish()
            },
        ));
        Object::new()
            .str("flag", &self.flag)
            .str("status", self.kind.word())
            .opt_str("problem", self.problem().as_deref())
            .num("size", self.size)
            .opt_num("started_unix", self.started())
            .opt_str("started", self.started().map(iso8601).as_deref())
            .opt_num("lasted_s_min", self.lasted_s())
            .opt_str("source", get("source"))
            .opt_str("kernel", get("kernel"))
            .opt_str("boot_id", get("boot_id"))
            .opt_num("oom_events", d.and_then(|d| d.get_u64("oom_events")))
            .opt_num("oom_calls", d.and_then(|d| d.get_u64("oom_calls")))
            .opt_num(
                "mem_available_kb",
                d.and_then(|d| d.get_u64("mem_available_kb")),
            )
            .bool("gracetime_reboot", self.gracetime_reboot())
            .raw("victims", victims)
            .raw("fields", fields)
            .num("reported_unix", self.reported_unix)
            .str("reported", &iso8601(self.reported_unix))
            .str("summary", &self.log_line())
            .finish()
    }
}

/// Stores the JSON report under /var/lib/oom-ext/history and keeps the
/// newest [`HISTORY_KEEP`]. Returns the file written.
pub fn archive(root: &Root, report: &Report, json: &str) -> std::io::Result<PathBuf> {
    let dir = root.join(paths::HISTORY);
    std::fs::create_dir_all(&dir)?;
    let base = format!("{:010}", report.reported_unix);
    // Several reports in one second get increasing suffixes (never reused
    // after pruning, so the order by name stays the order of writing).
    let next = history_in(&dir)
        .iter()
        .filter_map(|p| history_key(p))
        .filter(|(t, _)| *t == base)
        .map(|(_, n)| n + 1)
        .max();
    let path = match next {
        None => dir.join(format!("{base}.json")),
        Some(n) => dir.join(format!("{base}-{n}.json")),
    };
    crate::init::write_atomic(&path, &format!("{json}\n"))?;
    prune(&dir, HISTORY_KEEP)?;
    Ok(path)
}

/// Archived reports, oldest first (names start with the zero-padded time).
pub fn history(root: &Root) -> Vec<PathBuf> {
    history_in(&root.join(paths::HISTORY))
}

fn history_in(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|p| history_key(p).unwrap_or_default());
    v
}

/// (time, suffix) of a history file name `TTTTTTTTTT[-N].json`.
fn history_key(p: &std::path::Path) -> Option<(String, u64)> {
    let s = p.file_stem()?.to_str()?;
    let (t, n) = s.split_once('-').unwrap_or((s, "0"));
    Some((t.to_string(), n.parse().ok()?))
}

fn prune(dir: &std::path::Path, keep: usize) -> std::io::Result<()> {
    let all = history_in(dir);
    if all.len() > keep {
        for p in &all[..all.len() - keep] {
            std::fs::remove_file(p)?;
        }
    }
    Ok(())
}

/// Runs the executables of /etc/oom-ext/report.d in name order, the JSON on
/// stdin, each bounded by [`HOOK_TIMEOUT`].
pub fn run_hooks(root: &Root, json: &str, log: &Log, timeout: Duration) {
    let dir = root.join(paths::REPORT_D);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut hooks: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .collect();
    hooks.sort();
    for h in hooks {
        let name = h.display().to_string();
        match run_hook(&h, json, timeout) {
            Ok(0) => log.info(&format!("report hook {name} done")),
            Ok(code) => log.warn(&format!("report hook {name} exited with {code}")),
            Err(e) => log.warn(&format!("report hook {name}: {e}")),
        }
    }
}

fn run_hook(path: &std::path::Path, json: &str, timeout: Duration) -> std::io::Result<i32> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};
    let mut child = Command::new(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    // A hook that does not read its input must not block us (a report can
    // exceed the pipe buffer): the pipe is non-blocking and fed between the
    // polls for the hook's exit, so the timeout still applies. (No writer
    // thread: a thread would link glibc's pthread_create and resolver
    // state into the static binary, about 30 kB.)
    let mut stdin = child.stdin.take();
    if let Some(s) = &stdin {
        let fl = nix::fcntl::OFlag::from_bits_truncate(nix::fcntl::fcntl(
            s.as_raw_fd(),
            nix::fcntl::FcntlArg::F_GETFL,
        )?);
        nix::fcntl::fcntl(
            s.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(fl | nix::fcntl::OFlag::O_NONBLOCK),
        )?;
    }
    let mut data = json.as_bytes();
    let start = Instant::now();
    loop {
        if let Some(s) = &mut stdin {
            loop {
                match s.write(data) {
                    Ok(n) if n > 0 && n < data.len() => data = &data[n..],
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // Everything written (closing the pipe gives the hook
                    // EOF), or the hook closed its end: stop feeding it.
                    _ => {
                        data = &[];
                        break;
                    }
                }
            }
            if data.is_empty() {
                stdin = None;
            }
        }
        if let Some(st) = child.try_wait()? {
            return Ok(st.code().unwrap_or(128));
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("killed after {} s", timeout.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub json: bool,
    pub keep: bool,
    pub flag: Option<String>,
    pub hook_timeout: Option<Duration>,
}

/// `oom-ext report`: returns (exit code, text for stdout).
pub fn run(root: &Root, log: &Log, opts: &Options) -> (i32, String) {
    let flags = match &opts.flag {
        Some(f) => vec![f.clone()],
        None => candidates(root),
    };
    let now = unix_now();
    let mut out = String::new();
    let mut jsons = Vec::new();
    let mut code = EXIT_NONE;
    for f in flags {
        let report = match inspect(root, &f, now) {
            Ok(None) => continue,
            Ok(Some(r)) => r,
            Err(e) => {
                log.err(&format!("cannot read crash flag {f}: {e}"));
                code = EXIT_ERROR;
                continue;
            }
        };
        code = EXIT_REPORTED;
        let json = report.json();
        log.warn(&report.log_line());
        if opts.json {
            jsons.push(json.clone());
        } else {
            out.push_str(&report.human());
        }
        match archive(root, &report, &json) {
            Ok(p) => log.info(&format!("report archived as {}", p.display())),
            Err(e) => log.err(&format!(
                "cannot archive the report under /{}: {e}",
                paths::HISTORY
            )),
        }
        run_hooks(root, &json, log, opts.hook_timeout.unwrap_or(HOOK_TIMEOUT));
        if !opts.keep {
            if let Err(e) = flag::remove(root, &f) {
                log.err(&format!("cannot remove crash flag {f}: {e}"));
            }
        }
    }
    if opts.json {
        out = if jsons.len() == 1 {
            format!("{}\n", jsons[0])
        } else {
            format!("{}\n", json::array(jsons))
        };
    } else if code == EXIT_NONE {
        out.push_str("oom-ext: no crash flag: the previous boot had no OOM hang\n");
    }
    (code, out)
}
