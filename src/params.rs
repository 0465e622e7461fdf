//! The parameters of oom_ext: one table ([`TABLE`]) of key, kind, range,
//! default and whether the module owns it. Parsing (command line, params
//! file), module arguments, sysctls and summaries all go through it; a new
//! tunable is one row here plus a field in [`Params`]. Pure: no I/O here.

#![forbid(unsafe_code)]

use static_assertions::const_assert;
use std::fmt;

pub const DEFAULT_FLAG: &str = "/oomflag";
pub const FLAG_NAME_MAX: usize = 255;

/// All tunables, typed. Units: sizes in MiB, times in seconds unless the
/// name says ms. What each means: [`TABLE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub enabled: bool,
    pub bufsize: u32,
    pub gracetime: u32,
    pub resettime: u32,
    pub crashflag: bool,
    pub crashflag_name: String,
    pub psi: bool,
    pub psi_stall_ms: u32,
    pub psi_window_ms: u32,
    pub psi_kill_ms: u32,
    pub policy: OomPolicy,
    pub kill_scope: KillScope,
    pub parent_max: u32,
    pub parent_expire: u32,
    pub dry_run: bool,
    pub harm: bool,
    pub harm_freeze_pct: u32,
    pub harm_runway_ms: u32,
    pub harm_floor_pct: u32,
    pub harm_act_ms: u32,
    pub on_hang: OnHang,
    pub on_hang_boots: u32,
}

/// `oom_ext.policy=` (seed 002's policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OomPolicy {
    #[default]
    Kill,
    /// The first OOM makes the crash flag durable, then panics (reboots).
    Panic,
}

/// `oom_ext.kill_scope=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KillScope {
    #[default]
    Process,
    /// The victim's whole systemd unit (cgroup.kill).
    Unit,
}

/// `on_hang=`: what the next boot does after consecutive OOM hangs
/// (docs/policy.md, src/onhang/).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnHang {
    #[default]
    Report,
    /// Runtime-mask the systemd unit of the hangs' top victim for one boot.
    MaskUnit,
    /// Boot into rescue.target.
    Rescue,
}

pub const ON_HANG: &[&str] = &["report", "mask-unit", "rescue"];

impl OnHang {
    pub fn as_str(self) -> &'static str {
        ON_HANG[self as usize]
    }
    pub fn from_word(w: &str) -> OnHang {
        match w {
            "mask-unit" => OnHang::MaskUnit,
            "rescue" => OnHang::Rescue,
            _ => OnHang::Report,
        }
    }
}

pub const POLICIES: &[&str] = &["kill", "panic"];
pub const KILL_SCOPES: &[&str] = &["process", "unit"];

impl OomPolicy {
    pub fn as_str(self) -> &'static str {
        POLICIES[self as usize]
    }
    fn from_word(w: &str) -> OomPolicy {
        if w == "panic" {
            OomPolicy::Panic
        } else {
            OomPolicy::Kill
        }
    }
}

impl KillScope {
    pub fn as_str(self) -> &'static str {
        KILL_SCOPES[self as usize]
    }
    fn from_word(w: &str) -> KillScope {
        if w == "unit" {
            KillScope::Unit
        } else {
            KillScope::Process
        }
    }
}

/// What values a key takes, and its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool {
        default: bool,
    },
    Number {
        min: u32,
        max: u32,
        default: u32,
        /// 0 is accepted too, below `min`, and means off.
        off: bool,
    },
    /// An absolute path under the module's rules ([`check_flag_path`]).
    FlagPath {
        default: &'static str,
    },
    /// One of a few words.
    Word {
        words: &'static [&'static str],
        default: &'static str,
    },
}

/// Where a key's value lives in [`Params`].
#[derive(Clone, Copy)]
enum Slot {
    Bool(fn(&Params) -> bool, fn(&mut Params, bool)),
    Number(fn(&Params) -> u32, fn(&mut Params, u32)),
    Text(fn(&Params) -> &str, fn(&mut Params, String)),
    /// Set with a word [`Kind::Word`] allowed.
    Word(fn(&Params) -> &'static str, fn(&mut Params, &str)),
}

/// One tunable.
#[derive(Clone, Copy)]
pub struct Param {
    /// The name in `/run/oom-ext/params`; `oom_ext.KEY=` on the command
    /// line (except `enabled`: that is `oom_ext=`); for module keys also the
    /// module parameter and `vm.oom_ext.KEY` sysctl.
    pub key: &'static str,
    pub kind: Kind,
    /// The module owns it (module parameter and sysctl).
    pub module: bool,
    /// Shown in `init`'s one-line summary.
    pub summary: bool,
    /// One line for summaries and docs.
    pub about: &'static str,
    slot: Slot,
}

macro_rules! slot {
    (bool $f:ident) => {
        Slot::Bool(|p| p.$f, |p, v| p.$f = v)
    };
    (number $f:ident) => {
        Slot::Number(|p| p.$f, |p, v| p.$f = v)
    };
    (text $f:ident) => {
        Slot::Text(|p| &p.$f, |p, v| p.$f = v)
    };
    (word $f:ident $t:ident) => {
        Slot::Word(|p| p.$f.as_str(), |p, v| p.$f = $t::from_word(v))
    };
}

/// Every tunable, in the order of the params file and the module arguments.
pub const TABLE: &[Param] = &[
    Param {
        key: "enabled",
        kind: Kind::Bool { default: true },
        module: false,
        summary: false,
        about: "oom_ext=0|off on the command line turns everything off",
        slot: slot!(bool enabled),
    },
    Param {
        key: "bufsize",
        kind: Kind::Number {
            min: 0,
            max: 4096,
            default: 32,
            off: false,
        },
        module: true,
        summary: true,
        about: "emergency buffer, MiB; 0 = none",
        slot: slot!(number bufsize),
    },
    Param {
        key: "gracetime",
        // The OOM state lasts at least 6 s (5 s without OOM activity, checked
        // each second): a shorter gracetime would panic on every OOM. The
        // module refuses 1..6 too.
        kind: Kind::Number {
            min: 7,
            max: 86400,
            default: 0,
            off: true,
        },
        module: true,
        summary: true,
        about: "s of OOM state before panic (module) or reboot (fallback); 0 = never",
        slot: slot!(number gracetime),
    },
    Param {
        key: "resettime",
        kind: Kind::Number {
            min: 0,
            max: 86400,
            default: 300,
            off: false,
        },
        module: true,
        summary: true,
        about: "s after the OOM state before the buffer is re-armed",
        slot: slot!(number resettime),
    },
    Param {
        key: "crashflag",
        kind: Kind::Bool { default: true },
        module: true,
        summary: true,
        about: "write the crash flag during the OOM state",
        slot: slot!(bool crashflag),
    },
    Param {
        key: "crashflag_name",
        kind: Kind::FlagPath {
            default: DEFAULT_FLAG,
        },
        module: true,
        summary: true,
        about: "the crash flag's absolute path",
        slot: slot!(text crashflag_name),
    },
    Param {
        key: "psi",
        kind: Kind::Bool { default: true },
        module: false,
        summary: true,
        about: "stall protection with a PSI trigger (docs/stall.md)",
        slot: slot!(bool psi),
    },
    Param {
        key: "psi_stall_ms",
        kind: Kind::Number {
            min: 10,
            max: 500,
            default: 150,
            off: false,
        },
        module: false,
        summary: false,
        about: "ms of memory stall (\"some\") per window that counts as a stall",
        slot: slot!(number psi_stall_ms),
    },
    Param {
        key: "psi_window_ms",
        kind: Kind::Number {
            min: 500,
            max: 10000,
            default: 1000,
            off: false,
        },
        module: false,
        summary: false,
        about: "the PSI window, ms",
        slot: slot!(number psi_window_ms),
    },
    Param {
        key: "psi_kill_ms",
        kind: Kind::Number {
            min: 0,
            max: 600_000,
            default: 2000,
            off: false,
        },
        module: false,
        summary: false,
        about: "ms of stall before a kill, and between kills while it lasts; 0 = never",
        slot: slot!(number psi_kill_ms),
    },
    Param {
        key: "policy",
        kind: Kind::Word {
            words: POLICIES,
            default: "kill",
        },
        module: false,
        summary: false,
        about: "what an OOM does: kill a victim, or panic (reboot) at the first one",
        slot: slot!(word policy OomPolicy),
    },
    Param {
        key: "kill_scope",
        kind: Kind::Word {
            words: KILL_SCOPES,
            default: "process",
        },
        module: false,
        summary: false,
        about: "kill the victim alone, or its whole service or scope (cgroup.kill)",
        slot: slot!(word kill_scope KillScope),
    },
    Param {
        key: "parent_max",
        kind: Kind::Number {
            min: 0,
            max: 1000,
            default: 0,
            off: false,
        },
        module: false,
        summary: false,
        about: "kill a parent after this many of its children were OOM victims; 0 = never",
        slot: slot!(number parent_max),
    },
    Param {
        key: "parent_expire",
        kind: Kind::Number {
            min: 1,
            max: 86400,
            default: 300,
            off: false,
        },
        module: false,
        summary: false,
        about: "s without a new victim after which a parent is forgiven",
        slot: slot!(number parent_expire),
    },
    Param {
        key: "dry_run",
        kind: Kind::Bool { default: false },
        module: false,
        summary: false,
        about: "log the victim that would die and why, kill nobody",
        slot: slot!(bool dry_run),
    },
    Param {
        key: "harm",
        kind: Kind::Bool { default: true },
        module: false,
        summary: false,
        about: "stall protection acts on harm, not on PSI some (issue 16; docs/stall.md)",
        slot: slot!(bool harm),
    },
    Param {
        key: "harm_freeze_pct",
        kind: Kind::Number {
            min: 5,
            max: 100,
            default: 30,
            off: false,
        },
        module: false,
        summary: false,
        about: "harm: share of a second every task waited on memory (PSI full) that is a freeze",
        slot: slot!(number harm_freeze_pct),
    },
    Param {
        key: "harm_runway_ms",
        kind: Kind::Number {
            min: 0,
            max: 60_000,
            default: 2000,
            off: false,
        },
        module: false,
        summary: false,
        about: "harm: headroom gone within this many ms at its rate of fall (swap counts at the swap-out rate times this); 0 = never",
        slot: slot!(number harm_runway_ms),
    },
    Param {
        key: "harm_floor_pct",
        kind: Kind::Number {
            min: 0,
            max: 50,
            default: 4,
            off: false,
        },
        module: false,
        summary: false,
        about: "harm: headroom (MemAvailable + the swap the disk takes in time) at or below this share of MemTotal is gone",
        slot: slot!(number harm_floor_pct),
    },
    Param {
        key: "harm_act_ms",
        kind: Kind::Number {
            min: 100,
            max: 60_000,
            default: 1000,
            off: false,
        },
        module: false,
        summary: false,
        about: "harm: ms of freeze in all (PSI full, short freezes added up) within 10 s, since the last response, that calls for the next one",
        slot: slot!(number harm_act_ms),
    },
    Param {
        key: "on_hang",
        kind: Kind::Word {
            words: ON_HANG,
            default: "report",
        },
        module: false,
        summary: false,
        about: "after on_hang_boots boots in a row ended in an OOM hang: report, mask-unit (the top victim's unit, this boot) or rescue",
        slot: slot!(word on_hang OnHang),
    },
    Param {
        key: "on_hang_boots",
        kind: Kind::Number {
            min: 1,
            max: 10,
            default: 2,
            off: false,
        },
        module: false,
        summary: false,
        about: "consecutive OOM-hang boots before on_hang acts",
        slot: slot!(number on_hang_boots),
    },
];

/// Every numeric default is inside its range (checked at compile time).
const fn defaults_in_range(t: &[Param]) -> bool {
    let mut i = 0;
    while i < t.len() {
        if let Kind::Number {
            min,
            max,
            default,
            off,
        } = t[i].kind
        {
            if min > max || !(off && default == 0) && (default < min || default > max) {
                return false;
            }
        }
        i += 1;
    }
    true
}
const_assert!(defaults_in_range(TABLE));
// Ten decimal digits always fit a u64 (parse_number relies on it).
const_assert!(u32::MAX as u64 <= 9_999_999_999);

/// The table row of a key.
pub fn param(key: &str) -> Option<&'static Param> {
    TABLE.iter().find(|p| p.key == key)
}

/// The keys the module owns, in table order.
pub fn module_keys() -> impl DoubleEndedIterator<Item = &'static str> {
    TABLE.iter().filter(|p| p.module).map(|p| p.key)
}

impl Default for Params {
    fn default() -> Self {
        let mut p = Params {
            enabled: false,
            bufsize: 0,
            gracetime: 0,
            resettime: 0,
            crashflag: false,
            crashflag_name: String::new(),
            psi: false,
            psi_stall_ms: 0,
            psi_window_ms: 0,
            psi_kill_ms: 0,
            policy: OomPolicy::Kill,
            kill_scope: KillScope::Process,
            parent_max: 0,
            parent_expire: 0,
            dry_run: false,
            harm: false,
            harm_freeze_pct: 0,
            harm_runway_ms: 0,
            harm_floor_pct: 0,
            harm_act_ms: 0,
            on_hang: OnHang::Report,
            on_hang_boots: 0,
        };
        for row in TABLE {
            match (row.kind, row.slot) {
                (Kind::Bool { default }, Slot::Bool(_, set)) => set(&mut p, default),
                (Kind::Number { default, .. }, Slot::Number(_, set)) => set(&mut p, default),
                (Kind::FlagPath { default }, Slot::Text(_, set)) => set(&mut p, default.into()),
                (Kind::Word { default, .. }, Slot::Word(_, set)) => set(&mut p, default),
                _ => unreachable!("{}: kind and slot disagree", row.key),
            }
        }
        p
    }
}

/// Why a value was refused, written so it completes "not ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownKey,
    NotANumber {
        min: u32,
        max: u32,
    },
    OutOfRange {
        min: u32,
        max: u32,
    },
    /// For a key whose 0 means off.
    NotOffOrInRange {
        min: u32,
        max: u32,
    },
    NotABoolean,
    BadPath(&'static str),
    NotOneOf(&'static [&'static str]),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownKey => write!(f, "a known key"),
            Refusal::NotANumber { min, max } => write!(f, "not a number in {min}..{max}"),
            Refusal::OutOfRange { min, max } => write!(f, "out of range {min}..{max}"),
            Refusal::NotOffOrInRange { min, max } => {
                write!(f, "neither 0 (off) nor in {min}..{max}")
            }
            Refusal::NotABoolean => write!(f, "not a boolean (1|yes|true|on or 0|no|false|off)"),
            Refusal::BadPath(why) => write!(f, "not a valid flag path: {why}"),
            Refusal::NotOneOf(words) => write!(f, "not one of {}", words.join("|")),
        }
    }
}

/// zram-generator's boolean words; an empty value (bare key) means true.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "" | "1" | "yes" | "true" | "on" | "y" => Some(true),
        "0" | "no" | "false" | "off" | "n" => Some(false),
        _ => None,
    }
}

/// Decimal digits only: no sign, no spaces, no hex; huge values are out of
/// range rather than wrapped.
pub fn parse_number(v: &str, min: u32, max: u32) -> Result<u32, Refusal> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::NotANumber { min, max });
    }
    let digits = v.trim_start_matches('0');
    if digits.len() > 10 {
        return Err(Refusal::OutOfRange { min, max });
    }
    let n: u64 = if digits.is_empty() {
        0
    } else {
        digits
            .parse()
            .map_err(|_| Refusal::NotANumber { min, max })?
    };
    if n < u64::from(min) || n > u64::from(max) {
        return Err(Refusal::OutOfRange { min, max });
    }
    Ok(n as u32)
}

/// The configured-path rule shared with the module (crate::rootfs::check_path).
pub fn check_flag_path(v: &str) -> Result<(), Refusal> {
    crate::rootfs::check_path(v.as_bytes()).map_err(Refusal::BadPath)
}

impl Params {
    /// Sets one key from its text form, or says why not (the old value stays).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Refusal> {
        let row = param(key).ok_or(Refusal::UnknownKey)?;
        match (row.kind, row.slot) {
            (Kind::Bool { .. }, Slot::Bool(_, set)) => {
                set(self, parse_bool(value).ok_or(Refusal::NotABoolean)?)
            }
            (Kind::Number { min, max, off, .. }, Slot::Number(_, set)) => set(
                self,
                if off {
                    match parse_number(value, 0, max) {
                        Ok(0) => 0,
                        _ => parse_number(value, min, max)
                            .map_err(|_| Refusal::NotOffOrInRange { min, max })?,
                    }
                } else {
                    parse_number(value, min, max)?
                },
            ),
            (Kind::FlagPath { .. }, Slot::Text(_, set)) => {
                check_flag_path(value)?;
                set(self, value.to_string())
            }
            (Kind::Word { words, .. }, Slot::Word(_, set)) => {
                if !words.contains(&value) {
                    return Err(Refusal::NotOneOf(words));
                }
                set(self, value)
            }
            _ => unreachable!("{key}: kind and slot disagree"),
        }
        Ok(())
    }

    /// The current value of a key in text form (as `set` accepts it).
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match param(key)?.slot {
            Slot::Bool(get, _) => if get(self) { "1" } else { "0" }.to_string(),
            Slot::Number(get, _) => get(self).to_string(),
            Slot::Text(get, _) => get(self).to_string(),
            Slot::Word(get, _) => get(self).to_string(),
        })
    }

    /// `key=value` for these keys, joined by `sep`.
    fn pairs<'a>(&self, keys: impl Iterator<Item = &'a str>, sep: &str) -> String {
        keys.map(|k| format!("{k}={}", self.get(k).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// `/run/oom-ext/params` content: every key.
    pub fn to_file(&self) -> String {
        self.pairs(TABLE.iter().map(|p| p.key), "\n") + "\n"
    }

    /// Reads `/run/oom-ext/params` content; unknown keys and bad values are
    /// skipped (the file is ours, but a damaged one must not stop the guard).
    pub fn from_file(text: &str) -> (Params, Vec<String>) {
        let mut p = Params::default();
        let mut problems = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                problems.push(format!("line {line:?} has no '='"));
                continue;
            };
            if let Err(e) = p.set(k, v) {
                if e != Refusal::UnknownKey {
                    problems.push(format!("{k}={v:?}: {e}"));
                }
            }
        }
        (p, problems)
    }

    /// Argument string for `finit_module` (module parameters).
    pub fn module_args(&self) -> String {
        self.pairs(module_keys(), " ")
    }

    /// `init`'s one-line summary of the keys marked for it.
    pub fn summary(&self) -> String {
        self.pairs(TABLE.iter().filter(|p| p.summary).map(|p| p.key), " ")
    }

    /// The PSI trigger line for `/proc/pressure/memory`.
    pub fn psi_trigger(&self) -> String {
        format!(
            "some {} {}",
            u64::from(self.psi_stall_ms) * 1000,
            u64::from(self.psi_window_ms) * 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gracetime_is_off_or_longer_than_the_shortest_oom_state() {
        let mut p = Params::default();
        for ok in ["0", "000", "7", "86400"] {
            assert_eq!(p.set("gracetime", ok), Ok(()), "{ok}");
        }
        for bad in ["1", "6", "86401", "99999999999"] {
            assert_eq!(
                p.set("gracetime", bad),
                Err(Refusal::NotOffOrInRange { min: 7, max: 86400 }),
                "{bad}"
            );
        }
        assert_eq!(
            p.set("gracetime", "-5"),
            Err(Refusal::NotOffOrInRange { min: 7, max: 86400 })
        );
        assert_eq!(p.gracetime, 86400, "a refused value keeps the old one");
        assert_eq!(
            Refusal::NotOffOrInRange { min: 7, max: 86400 }.to_string(),
            "neither 0 (off) nor in 7..86400"
        );
    }

    #[test]
    fn numbers_are_plain_decimal_in_range() {
        assert_eq!(parse_number("32", 0, 4096), Ok(32));
        assert_eq!(parse_number("0007", 0, 4096), Ok(7));
        assert_eq!(parse_number("0", 0, 4096), Ok(0));
        for bad in [
            "", "-1", "+1", " 1", "1 ", "0x10", "1e3", "١٢", "3.5", "abc",
        ] {
            assert_eq!(
                parse_number(bad, 0, 4096),
                Err(Refusal::NotANumber { min: 0, max: 4096 }),
                "{bad:?}"
            );
        }
        for big in [
            "4097",
            "4294967296",
            "99999999999999999999999999999",
            "18446744073709551616",
        ] {
            assert_eq!(
                parse_number(big, 0, 4096),
                Err(Refusal::OutOfRange { min: 0, max: 4096 }),
                "{big}"
            );
        }
        assert_eq!(parse_number("00000000000000000000001", 0, 4096), Ok(1));
        assert_eq!(
            parse_number("5", 10, 20),
            Err(Refusal::OutOfRange { min: 10, max: 20 })
        );
    }

    #[test]
    fn flag_paths_follow_the_module_rules() {
        assert!(check_flag_path("/oomflag").is_ok());
        assert!(check_flag_path("/var/lib/oom-ext/flag").is_ok());
        let long = format!("/{}", "a".repeat(255));
        for bad in [
            "",
            "oomflag",
            "./x",
            "/a/../etc/passwd",
            "/..",
            "/tmp/",
            "/a b",
            "/a\nb",
            "/a\"b",
            "/a\0b",
            long.as_str(),
        ] {
            assert!(check_flag_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_flag_path(&format!("/{}", "a".repeat(254))).is_ok());
    }

    #[test]
    fn params_file_round_trips_and_survives_damage() {
        let mut p = Params::default();
        p.set("bufsize", "64").unwrap();
        p.set("crashflag_name", "/var/oom").unwrap();
        p.set("psi", "off").unwrap();
        p.set("policy", "panic").unwrap();
        p.set("kill_scope", "unit").unwrap();
        p.set("parent_max", "3").unwrap();
        p.set("dry_run", "yes").unwrap();
        assert_eq!(p.policy, OomPolicy::Panic);
        assert_eq!(p.kill_scope, KillScope::Unit);
        assert_eq!(p.set("policy", "classic"), Err(Refusal::NotOneOf(POLICIES)));
        assert_eq!(
            Refusal::NotOneOf(KILL_SCOPES).to_string(),
            "not one of process|unit"
        );
        assert_eq!(
            p.set("parent_expire", "0"),
            Err(Refusal::OutOfRange { min: 1, max: 86400 })
        );
        let (q, problems) = Params::from_file(&p.to_file());
        assert_eq!(p, q);
        assert!(problems.is_empty());
        let (r, problems) =
            Params::from_file("bufsize=abc\ngarbage\nfuture_key=1\n\0\ngracetime=30");
        assert_eq!(r.bufsize, 32);
        assert_eq!(r.gracetime, 30);
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn the_table_has_each_key_once_and_valid_defaults() {
        let p = Params::default();
        for (i, row) in TABLE.iter().enumerate() {
            assert!(TABLE[..i].iter().all(|r| r.key != row.key), "{}", row.key);
            let v = p.get(row.key).unwrap();
            let mut q = Params::default();
            assert_eq!(q.set(row.key, &v), Ok(()), "default of {}", row.key);
            assert_eq!(q, p);
        }
        assert_eq!(
            module_keys().collect::<Vec<_>>(),
            [
                "bufsize",
                "gracetime",
                "resettime",
                "crashflag",
                "crashflag_name"
            ]
        );
    }

    #[test]
    fn module_args_and_psi_trigger() {
        let p = Params::default();
        assert_eq!(
            p.module_args(),
            "bufsize=32 gracetime=0 resettime=300 crashflag=1 crashflag_name=/oomflag"
        );
        assert_eq!(p.psi_trigger(), "some 150000 1000000");
    }
}
