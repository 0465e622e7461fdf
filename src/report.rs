//! `oom-ext report`: on the next boot, reports a crash flag left by an OOM
//! hang (human text, JSON, one log line), archives it, runs the hooks in
//! /etc/oom-ext/report.d and removes the flag. Hostile flags (symlink, FIFO,
//! huge, binary) are reported as such and never followed or trusted.

use crate::flag::{self, Damage, FlagData, READ_MAX};
use crate::json::{self, Object};
use crate::log::{iso8601, unix_now, Log};
use crate::root::Root;
use crate::rootfs::{self, Error};
use crate::{cmdline, history, hooks, paths, pstore};
use std::fmt::Write as _;
use std::time::Duration;

pub const HISTORY_KEEP: usize = history::KEEP;
pub const HOOK_TIMEOUT: Duration = hooks::TIMEOUT;

/// Exit codes (documented in oom-ext(8)): an error wins over a report.
pub const EXIT_NONE: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
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
    /// (dev, inode) of the regular file read, to remove only that one.
    pub ino: Option<(u64, u64)>,
    /// This boot's id: the next boot's on_hang chains hangs with it.
    pub reported_boot_id: Option<String>,
    /// What on_hang did about it this boot (`oom-ext on-hang apply`).
    pub on_hang: Option<crate::onhang::Record>,
}

/// Flag paths to look at, in order: this boot's effective parameters, the
/// command line, the default ([`crate::runtime::flag_candidates`]).
pub fn candidates(root: &Root) -> Vec<String> {
    crate::runtime::flag_candidates(root)
}

/// Looks at the flag without following links or blocking on FIFOs, inside
/// the root. `Ok(None)`: no flag there.
pub fn inspect(root: &Root, flag: &str, now: u64) -> std::io::Result<Option<Report>> {
    if let Err(why) = rootfs::check_path(flag.as_bytes()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a valid flag path: {why}"),
        ));
    }
    let (dir, name) = match rootfs::parent(root, flag) {
        Ok(x) => x,
        Err(Error::Missing) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let st = match dir.lstat(&name) {
        Ok(st) => st,
        Err(Error::Missing) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut r = Report {
        flag: flag.to_string(),
        kind: Kind::Ok,
        size: st.st_size.max(0) as u64,
        mtime: Some(st.st_mtime.max(0) as u64),
        data: None,
        reported_unix: now,
        ino: None,
        reported_boot_id: rootfs::read_small(root, paths::BOOT_ID)
            .and_then(|b| String::from_utf8(b).ok())
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty()),
        on_hang: crate::onhang::apply::record(root),
    };
    let kind = rootfs::kind(st.st_mode);
    if kind == "symlink" {
        let target = dir
            .read_link(&name)
            .map(|t| cmdline::escape_bytes(&t))
            .unwrap_or_else(|_| "?".into());
        r.kind = Kind::Symlink(target);
        return Ok(Some(r));
    }
    if kind != "regular file" {
        r.kind = Kind::Special(kind);
        return Ok(Some(r));
    }
    let (f, st2) = match dir.open_regular(&name) {
        Ok(x) => x,
        Err(Error::NotRegular(k)) => {
            r.kind = Kind::Special(k);
            return Ok(Some(r));
        }
        Err(e) => return Err(e.into()),
    };
    r.ino = Some((st2.st_dev, st2.st_ino));
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, READ_MAX as u64 + 1), &mut bytes)?;
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
        Err(Damage::NotAFlag) => r.kind = Kind::Corrupt,
    }
    Ok(Some(r))
}

impl Report {
    /// Only a regular file that parses as an oom_ext flag is removed.
    pub fn removable(&self) -> bool {
        self.ino.is_some() && self.data.is_some() && matches!(self.kind, Kind::Ok | Kind::Huge)
    }

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

    /// `policy=panic` ended the boot on purpose (issue 17).
    fn policy_panic(&self) -> bool {
        self.data
            .as_ref()
            .and_then(|d| d.get("policy"))
            .is_some_and(|v| v == "panic")
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
            // Escaped when read (escape_bytes).
            Kind::Symlink(t) => Some(format!("a symlink to {t}: not followed")),
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
        if let Some(n) = d.and_then(|d| d.get_u64("memcg_kills")) {
            let _ = write!(s, " memcg_kills={n}");
        }
        if self.policy_panic() {
            s.push_str(" policy=panic");
        }
        if self.gracetime_reboot() {
            s.push_str(" gracetime_reboot=1");
        }
        if let Some(r) = &self.on_hang {
            let _ = write!(s, " on_hang={}", cmdline::escape_value(&r.action));
            if let Some(u) = &r.unit {
                let _ = write!(s, " on_hang_unit={}", cmdline::escape_value(u));
            }
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
            if self.policy_panic() {
                "policy=panic: a deliberate panic (or reboot) at the first OOM"
            } else if self.gracetime_reboot() {
                "gracetime reboot"
            } else {
                "reset, power loss or panic (the flag was never removed)"
            }
        );
        let _ = writeln!(s, "  victims:     {}", d.victims.len());
        for v in &d.victims {
            let unit = v
                .cgroup
                .as_deref()
                .and_then(crate::onhang::system_unit)
                .map(|u| format!(", {}", esc(u)))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "    pid {} {} anon-rss {} kB{unit}",
                v.pid,
                esc(&v.comm),
                v.rss_kb
            );
        }
        if let Some(n) = d.get_u64("memcg_kills") {
            let _ = writeln!(
                s,
                "  cgroup OOMs: {n} (processes killed at a cgroup's memory limit that boot, not system OOM victims)"
            );
        }
        if let Some(r) = &self.on_hang {
            // Whole (esc cuts long values), control characters made safe.
            let line: String = r
                .summary()
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            let _ = writeln!(s, "  on hang:     {line}");
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
                // One key once (its last value, as `get` reads it), at the
                // place it first appeared.
                let mut seen: Vec<&str> = Vec::new();
                d.fields
                    .iter()
                    .filter(|(k, _)| {
                        let new = !seen.contains(&k.as_str());
                        seen.push(k);
                        new
                    })
                    .fold(Object::new(), |o, (k, _)| o.str(k, d.get(k).unwrap_or("")))
                    .finish()
            })
            .unwrap_or_else(|| "null".into());
        let victims = json::array(d.map(|d| d.victims.clone()).unwrap_or_default().iter().map(
            |v| {
                let o = Object::new()
                    .num("pid", u64::from(v.pid))
                    .str("comm", &v.comm)
                    .num("rss_kb", v.rss_kb);
                match v.cgroup.as_deref() {
                    Some(cg) => o
                        .str("cgroup", cg)
                        .opt_str("unit", crate::onhang::system_unit(cg)),
                    None => o,
                }
                .finish()
            },
        ));
        let o = Object::new()
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
            .opt_num("memcg_kills", d.and_then(|d| d.get_u64("memcg_kills")))
            .bool("gracetime_reboot", self.gracetime_reboot())
            .bool("policy_panic", self.policy_panic())
            .raw("victims", victims);
        let o = match &self.on_hang {
            Some(r) => o.raw("on_hang", r.json()),
            None => o,
        };
        let o = match &self.reported_boot_id {
            Some(b) => o.str("reported_boot_id", b),
            None => o,
        };
        o.raw("fields", fields)
            .num("reported_unix", self.reported_unix)
            .str("reported", &iso8601(self.reported_unix))
            .str("summary", &self.log_line())
            .finish()
    }
}

/// Archives `json` (a report, under `unix`) in the history, then runs the
/// hooks with it (real root only). `kept` names what stays in place when
/// the archive fails. Whether it was archived.
fn archive_and_run_hooks(
    root: &Root,
    unix: u64,
    json: &str,
    kept: &str,
    log: &Log,
    opts: &Options,
) -> bool {
    let archived = match history::archive(root, unix, json) {
        Ok(p) => {
            log.info(&format!("report archived as {p}"));
            true
        }
        Err(e) => {
            log.err(&format!(
                "cannot archive the report under /{}: {e}; {kept} is kept",
                paths::HISTORY
            ));
            false
        }
    };
    if root.is_system() {
        hooks::run_all(root, json, log, opts.hook_timeout.unwrap_or(HOOK_TIMEOUT));
    } else {
        log.info("report hooks not run: --root is not /");
    }
    archived
}

/// Archived reports, oldest first, as host paths.
pub fn history(root: &Root) -> Vec<std::path::PathBuf> {
    history::entries(root)
        .iter()
        .map(|e| root.join(e.path()))
        .collect()
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub json: bool,
    pub keep: bool,
    pub flag: Option<String>,
    pub hook_timeout: Option<Duration>,
}

/// The JSON of a candidate that could not be read.
fn error_json(flag: &str, e: &std::io::Error) -> String {
    Object::new()
        .str("flag", flag)
        .str("status", "error")
        .str("problem", &format!("cannot read: {e}"))
        .finish()
}

/// Removes the flag if it is still the file that was reported.
fn remove_reported(root: &Root, report: &Report) -> std::io::Result<()> {
    let (dir, name) = rootfs::parent(root, &report.flag)?;
    match dir.lstat(&name) {
        Ok(st) if Some((st.st_dev, st.st_ino)) == report.ino => Ok(dir.remove(&name)?),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "replaced since it was read: left alone",
        )),
        Err(Error::Missing) => Ok(()),
        Err(e) => Err(e.into()),
    }
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
    let (mut found, mut failed) = (false, false);
    for f in flags {
        let shown = cmdline::escape_value(&f);
        let report = match inspect(root, &f, now) {
            Ok(None) => continue,
            Ok(Some(r)) => r,
            Err(e) => {
                log.err(&format!("cannot read crash flag {shown}: {e}"));
                jsons.push(error_json(&f, &e));
                if !opts.json {
                    let _ = writeln!(out, "oom-ext: cannot read crash flag {shown}: {e}");
                }
                failed = true;
                continue;
            }
        };
        found = true;
        let json = report.json();
        log.warn(&report.log_line());
        if opts.json {
            jsons.push(json.clone());
        } else {
            out.push_str(&report.human());
        }
        let archived = archive_and_run_hooks(
            root,
            report.reported_unix,
            &json,
            &format!("the flag {shown}"),
            log,
            opts,
        );
        failed |= !archived;
        if opts.keep || !archived {
            continue;
        }
        if !report.removable() {
            log.warn(&format!(
                "crash flag {shown} left in place: {}",
                report.problem().unwrap_or_default()
            ));
        } else if let Err(e) = remove_reported(root, &report) {
            log.err(&format!("cannot remove crash flag {shown}: {e}"));
            failed = true;
        }
    }
    // The second record (the flag can be lost: panic() does not sync).
    for f in pstore::findings(root, now) {
        found = true;
        let json = f.json();
        let line = f.line();
        log.warn(&line);
        if opts.json {
            jsons.push(json.clone());
        } else {
            let _ = writeln!(out, "oom-ext: {line}");
        }
        let record = format!("/{}", f.record.display());
        // Once in the history and to the hooks, however often it is found
        // (a kept live record, systemd-pstore's copy read again).
        let archived = match history::find_prefix(root, &f.archive_prefix()) {
            Some(e) => {
                log.info(&format!(
                    "pstore record {record} was archived before as {}: not again, no hooks",
                    e.path()
                ));
                true
            }
            None => {
                let ok = archive_and_run_hooks(
                    root,
                    now,
                    &json,
                    &format!("the record {record}"),
                    log,
                    opts,
                );
                failed |= !ok;
                ok
            }
        };
        if opts.keep || !archived || !f.live {
            continue;
        }
        // pstore erases it from its backend.
        if let Err(e) = pstore::remove(root, &f) {
            log.err(&format!("cannot remove pstore record {record}: {e}"));
        }
    }
    if opts.json {
        out = if jsons.len() == 1 {
            format!("{}\n", jsons[0])
        } else {
            format!("{}\n", json::array(jsons))
        };
    } else if !found && !failed {
        out.push_str("oom-ext: no crash flag: the previous boot had no OOM hang\n");
    }
    let code = if failed {
        EXIT_ERROR
    } else if found {
        EXIT_REPORTED
    } else {
        EXIT_NONE
    };
    (code, out)
}
