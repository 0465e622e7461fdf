//! The rules of `policy.conf` and `policy.d/*.conf`: their syntax, and
//! which rule a process falls under. Pure.
//!
//! ```text
//! # VERB MATCH [MATCH...]       every match of the rule must hold
//! prefer  name=stress-ng
//! avoid   unit=postgresql.service
//! protect exe=/usr/sbin/sshd
//! prefer  uid=1000-60000 cmdline=--leak\s
//! default name=chrome           # back to the kernel's ranking
//! dry_run = yes                 # a setting: KEY = VALUE
//! ```
//!
//! Matches: `name=` (comm; a longer name is compared on its first 15
//! bytes, as the kernel keeps it), `exe=` (executable path), `unit=` (the
//! systemd unit from `/proc/PID/cgroup`) — these three take `*` globs —
//! `uid=N` or `uid=N-M` (numeric: no user database in an OOM), and
//! `cmdline=REGEX` (the arguments joined by spaces, [`super::pattern`]'s
//! subset), which takes the rest of the line and so comes last. Files are
//! read in order (policy.conf, then policy.d/ by name); for each process
//! the last rule that matches decides.
#![forbid(unsafe_code)]

use super::pattern::{glob, Regex};
use super::Proc;

/// What a matching rule does to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    /// Dies before every process without a prefer rule.
    Prefer,
    /// Undoes earlier rules: the kernel's ranking alone.
    Default,
    /// Dies only when no other candidate is left.
    Avoid,
    /// Never chosen by oom_ext.
    Protect,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Prefer => "prefer",
            Verb::Default => "default",
            Verb::Avoid => "avoid",
            Verb::Protect => "protect",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Name(String),
    Exe(String),
    Unit(String),
    Uid(u32, u32),
    Cmdline(Regex),
}

impl Match {
    pub fn matches(&self, p: &Proc) -> bool {
        match self {
            Match::Name(n) => glob(comm_prefix(n), &p.name),
            Match::Exe(e) => p.exe.as_deref().is_some_and(|x| glob(e, x)),
            Match::Unit(u) => p.unit().is_some_and(|x| glob(u, x)),
            Match::Uid(lo, hi) => (*lo..=*hi).contains(&p.uid),
            Match::Cmdline(r) => r.is_match(&p.cmdline),
        }
    }
}

/// The kernel keeps 15 bytes of a name; a glob with no `*` is cut the
/// same way (on a character boundary).
fn comm_prefix(n: &str) -> &str {
    if n.contains('*') || n.len() <= 15 {
        return n;
    }
    let mut end = 15;
    while !n.is_char_boundary(end) {
        end -= 1;
    }
    &n[..end]
}

/// Where a rule or setting came from: `file:line`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub verb: Verb,
    pub matches: Vec<Match>,
    /// The line as written (trimmed), for logs and `status`.
    pub text: String,
    pub origin: Origin,
}

impl Rule {
    pub fn matches(&self, p: &Proc) -> bool {
        self.matches.iter().all(|m| m.matches(p))
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\" ({})", self.text, self.origin)
    }
}

/// Settings the files may hold besides rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `dry_run = yes`: choose and log, kill nobody (or'ed with
    /// `oom_ext.dry_run=`).
    pub dry_run: Option<bool>,
    /// `on_hang = report|mask-unit|rescue` and `on_hang_boots = N` (the
    /// next boot's action on hangs, src/onhang/; checked by the table).
    pub on_hang: Option<crate::params::OnHang>,
    pub on_hang_boots: Option<u32>,
}

/// Everything the policy files say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub settings: Settings,
}

/// One refused line: logged as `FILE:LINE: REASON`, the rest applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub origin: Origin,
    pub reason: String,
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}, line ignored", self.origin, self.reason)
    }
}

impl Policy {
    /// The last rule that matches `p` (the one that decides), if any.
    pub fn rule_for(&self, p: &Proc) -> Option<&Rule> {
        self.rules.iter().rev().find(|r| r.matches(p))
    }

    /// Adds one file's lines; the refused ones come back.
    pub fn add_file(&mut self, file: &str, text: &str) -> Vec<Bad> {
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let origin = Origin {
                file: file.to_string(),
                line: i + 1,
            };
            if let Err(reason) = self.add_line(line, &origin) {
                bad.push(Bad { origin, reason });
            }
        }
        bad
    }

    fn add_line(&mut self, line: &str, origin: &Origin) -> Result<(), String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err("control character".into());
        }
        let word = line.split_whitespace().next().unwrap_or("");
        let verb = match word {
            "prefer" => Verb::Prefer,
            "default" => Verb::Default,
            "avoid" => Verb::Avoid,
            "protect" => Verb::Protect,
            _ if line
                .split_once('=')
                .is_some_and(|(k, _)| !k.trim().contains(char::is_whitespace)) =>
            {
                return self.add_setting(line)
            }
            _ => {
                return Err(format!(
                    "unknown word {word:?} (prefer, avoid, protect, default or KEY = VALUE)"
                ))
            }
        };
        let matches = parse_matches(line[word.len()..].trim_start())?;
        self.rules.push(Rule {
            verb,
            matches,
            text: line.to_string(),
            origin: origin.clone(),
        });
        Ok(())
    }

    fn add_setting(&mut self, line: &str) -> Result<(), String> {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        let (k, v) = (k.trim(), v.trim());
        match k {
            "dry_run" => {
                let b = crate::params::parse_bool(v)
                    .ok_or_else(|| format!("dry_run={v:?} is not a boolean"))?;
                self.settings.dry_run = Some(b);
                Ok(())
            }
            "on_hang" | "on_hang_boots" => {
                let mut p = crate::params::Params::default();
                p.set(k, v).map_err(|e| format!("{k}={v:?}: {e}"))?;
                if k == "on_hang" {
                    self.settings.on_hang = Some(p.on_hang);
                } else {
                    self.settings.on_hang_boots = Some(p.on_hang_boots);
                }
                Ok(())
            }
            _ => Err(format!(
                "unknown setting {k:?} (known: dry_run, on_hang, on_hang_boots)"
            )),
        }
    }
}

fn parse_matches(mut rest: &str) -> Result<Vec<Match>, String> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (k, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("{rest:?} is not KEY=VALUE"))?;
        if k.contains(char::is_whitespace) || k.is_empty() {
            return Err(format!("{k:?} is not a match key"));
        }
        if k == "cmdline" {
            let r = Regex::new(after).map_err(|e| format!("cmdline={after:?}: {e}"))?;
            out.push(Match::Cmdline(r));
            break;
        }
        let (v, next) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
        rest = next.trim_start();
        if v.is_empty() {
            return Err(format!("{k}= has no value"));
        }
        out.push(match k {
            "name" => Match::Name(v.to_string()),
            "exe" if v.starts_with('/') => Match::Exe(v.to_string()),
            "exe" => return Err(format!("exe={v:?} is not an absolute path")),
            "unit" => Match::Unit(v.to_string()),
            "uid" => parse_uid(v).ok_or_else(|| format!("uid={v:?} is not N or N-M"))?,
            _ => {
                return Err(format!(
                    "unknown match {k:?} (name, exe, unit, uid, cmdline)"
                ))
            }
        });
    }
    if out.is_empty() {
        return Err("a rule needs at least one match".into());
    }
    Ok(out)
}

fn parse_uid(v: &str) -> Option<Match> {
    let num = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match v.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            (a <= b).then_some(Match::Uid(a, b))
        }
        None => num(v).map(|n| Match::Uid(n, n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn proc(pid: u32, name: &str) -> Proc {
        Proc {
            pid,
            ppid: 1,
            name: name.into(),
            exe: Some(format!("/usr/bin/{name}")),
            cmdline: format!("/usr/bin/{name} --flag"),
            uid: 1000,
            cgroup: Some(format!("/system.slice/{name}.service")),
            oom_score: 600,
            rss_kb: 1000,
            ..Proc::default()
        }
    }

    fn policy(text: &str) -> (Policy, Vec<Bad>) {
        let mut p = Policy::default();
        let bad = p.add_file("/etc/oom-ext/policy.conf", text);
        (p, bad)
    }

    #[test]
    fn every_match_kind() {
        let (p, bad) = policy(
            "# comment\n\
             prefer name=leaker\n\
             avoid exe=/usr/bin/db*\n\
             protect unit=sshd.service\n\
             prefer uid=2000-2999\n\
             avoid cmdline=--keep\\s+me\n\
             \n",
        );
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(p.rules.len(), 5);
        let verb = |pr: &Proc| p.rule_for(pr).map(|r| r.verb);
        assert_eq!(verb(&proc(10, "leaker")), Some(Verb::Prefer));
        assert_eq!(verb(&proc(11, "dbserver")), Some(Verb::Avoid));
        assert_eq!(verb(&proc(12, "sshd")), Some(Verb::Protect));
        assert_eq!(verb(&proc(13, "other")), None);
        let mut u = proc(14, "other");
        u.uid = 2500;
        assert_eq!(verb(&u), Some(Verb::Prefer));
        let mut c = proc(15, "other");
        c.cmdline = "x --keep   me".into();
        assert_eq!(verb(&c), Some(Verb::Avoid));
        assert_eq!(p.rules[0].origin.line, 2);
        assert_eq!(
            p.rules[0].to_string(),
            "\"prefer name=leaker\" (/etc/oom-ext/policy.conf:2)"
        );
    }

    #[test]
    fn all_matches_of_a_rule_must_hold_and_the_last_rule_decides() {
        let (mut p, _) = policy("protect name=web uid=0\nprefer name=web\n");
        let mut root_web = proc(1, "web");
        root_web.uid = 0;
        assert_eq!(p.rule_for(&root_web).unwrap().verb, Verb::Prefer);
        let bad = p.add_file("/etc/oom-ext/policy.d/50-local.conf", "default name=web\n");
        assert!(bad.is_empty());
        let r = p.rule_for(&root_web).unwrap();
        assert_eq!(r.verb, Verb::Default);
        assert_eq!(r.origin.file, "/etc/oom-ext/policy.d/50-local.conf");
    }

    #[test]
    fn long_names_compare_as_the_kernel_keeps_them() {
        let (p, _) = policy("prefer name=chromium-browser-stable\n");
        let mut pr = proc(1, "x");
        pr.name = "chromium-browse".into();
        assert!(p.rule_for(&pr).is_some());
    }

    #[test]
    fn cmdline_takes_the_rest_of_the_line() {
        let (p, bad) = policy("prefer uid=1000 cmdline=^python3 .*leak uid=5\n");
        assert!(bad.is_empty());
        let mut pr = proc(1, "python3");
        pr.cmdline = "python3 /x/leak uid=5".into();
        assert!(p.rule_for(&pr).is_some());
        pr.cmdline = "python3 /x/leak".into();
        assert!(p.rule_for(&pr).is_none());
    }

    #[test]
    fn a_process_without_exe_or_unit_matches_no_such_rule() {
        let (p, _) = policy("prefer exe=/*\nprefer unit=*\n");
        let mut pr = proc(1, "x");
        pr.exe = None;
        pr.cgroup = Some("/user.slice".into());
        assert!(p.rule_for(&pr).is_none());
    }

    #[test]
    fn settings() {
        let (p, bad) = policy("dry_run = yes\n");
        assert!(bad.is_empty());
        assert_eq!(p.settings.dry_run, Some(true));
        let (p, _) = policy("on_hang = mask-unit\non_hang_boots=3\n");
        assert_eq!(p.settings.on_hang, Some(crate::params::OnHang::MaskUnit));
        assert_eq!(p.settings.on_hang_boots, Some(3));
        let (p, bad) = policy("on_hang = mask\non_hang_boots = 0\n");
        assert_eq!((p.settings.on_hang, p.settings.on_hang_boots), (None, None));
        assert_eq!(bad.len(), 2);
        assert!(
            bad[0].reason.contains("not one of report|mask-unit|rescue"),
            "{}",
            bad[0]
        );
        let (p, bad) = policy("dry_run=maybe\nfoo = 1\n");
        assert_eq!(p.settings.dry_run, None);
        assert_eq!(bad.len(), 2);
    }

    #[test]
    fn each_bad_line_is_named_and_the_rest_applies() {
        let text = "prefer name=ok1\n\
                    kill name=x\n\
                    prefer\n\
                    prefer name=\n\
                    prefer colour=red\n\
                    prefer exe=relative\n\
                    prefer uid=abc\n\
                    prefer uid=9-3\n\
                    prefer cmdline=(x)\n\
                    prefer name=a\u{7}b\n\
                    prefer notakeyvalue\n\
                    protect name=ok2\n";
        let (p, bad) = policy(text);
        assert_eq!(p.rules.len(), 2, "{:?}", p.rules);
        let lines: Vec<usize> = bad.iter().map(|b| b.origin.line).collect();
        assert_eq!(lines, (2..=11).collect::<Vec<_>>());
        let shown = bad[0].to_string();
        assert!(
            shown.starts_with("/etc/oom-ext/policy.conf:2: unknown word \"kill\""),
            "{shown}"
        );
        assert!(shown.ends_with("line ignored"), "{shown}");
        assert!(bad[7].reason.contains("escape"), "{}", bad[7].reason);
    }
}
