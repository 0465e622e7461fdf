//! The effective parameters of oom_ext, their ranges and defaults, and the
//! `key=value` form shared by `/run/oom-ext/params`, the module parameters
//! and the sysctls. Pure: no I/O here.

use std::fmt;

pub const DEFAULT_FLAG: &str = "/oomflag";
pub const FLAG_NAME_MAX: usize = 255;

/// All tunables. Units: sizes in MiB, times in seconds unless the name says ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// `oom_ext=0|off` turns the whole thing off.
    pub enabled: bool,
    pub bufsize: u32,
    pub gracetime: u32,
    pub resettime: u32,
    pub crashflag: bool,
    pub crashflag_name: String,
    /// Stall protection with PSI triggers (issue 6).
    pub psi: bool,
    pub psi_stall_ms: u32,
    pub psi_window_ms: u32,
    /// Stall that lasts this long makes the kernel's OOM killer pick a victim
    /// (sysrq `f`); 0 = never.
    pub psi_kill_ms: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            enabled: true,
            bufsize: 32,
            gracetime: 0,
            resettime: 300,
            crashflag: true,
            crashflag_name: DEFAULT_FLAG.to_string(),
            psi: true,
            psi_stall_ms: 150,
            psi_window_ms: 1000,
            psi_kill_ms: 2000,
        }
    }
}

/// Numeric keys: (name, min, max).
pub const NUMERIC: &[(&str, u32, u32)] = &[
    ("bufsize", 0, 4096),
    ("gracetime", 0, 86400),
    ("resettime", 0, 86400),
    ("psi_stall_ms", 10, 500),
    ("psi_window_ms", 500, 10000),
    ("psi_kill_ms", 0, 600_000),
];

pub const BOOLEAN: &[&str] = &["crashflag", "psi"];

/// Why a value was refused, written so it completes "not ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownKey,
    NotANumber { min: u32, max: u32 },
    OutOfRange { min: u32, max: u32 },
    NotABoolean,
    BadPath(&'static str),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownKey => write!(f, "a known key"),
            Refusal::NotANumber { min, max } => write!(f, "not a number in {min}..{max}"),
            Refusal::OutOfRange { min, max } => write!(f, "out of range {min}..{max}"),
            Refusal::NotABoolean => write!(f, "not a boolean (1|yes|true|on or 0|no|false|off)"),
            Refusal::BadPath(why) => write!(f, "not a valid flag path: {why}"),
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
        if let Some(&(_, min, max)) = NUMERIC.iter().find(|(k, _, _)| *k == key) {
            let n = parse_number(value, min, max)?;
            match key {
                "bufsize" => self.bufsize = n,
                "gracetime" => self.gracetime = n,
                "resettime" => self.resettime = n,
                "psi_stall_ms" => self.psi_stall_ms = n,
                "psi_window_ms" => self.psi_window_ms = n,
                _ => self.psi_kill_ms = n,
            }
            return Ok(());
        }
        match key {
            "crashflag" | "psi" | "enabled" => {
                let b = parse_bool(value).ok_or(Refusal::NotABoolean)?;
                match key {
                    "crashflag" => self.crashflag = b,
                    "psi" => self.psi = b,
                    _ => self.enabled = b,
                }
                Ok(())
            }
            "crashflag_name" => {
                check_flag_path(value)?;
                self.crashflag_name = value.to_string();
                Ok(())
            }
            _ => Err(Refusal::UnknownKey),
        }
    }

    /// The current value of a key in text form (as `set` accepts it).
    pub fn get(&self, key: &str) -> Option<String> {
        let b = |v: bool| if v { "1" } else { "0" }.to_string();
        Some(match key {
            "enabled" => b(self.enabled),
            "bufsize" => self.bufsize.to_string(),
            "gracetime" => self.gracetime.to_string(),
            "resettime" => self.resettime.to_string(),
            "crashflag" => b(self.crashflag),
            "crashflag_name" => self.crashflag_name.clone(),
            "psi" => b(self.psi),
            "psi_stall_ms" => self.psi_stall_ms.to_string(),
            "psi_window_ms" => self.psi_window_ms.to_string(),
            "psi_kill_ms" => self.psi_kill_ms.to_string(),
            _ => return None,
        })
    }

    pub const KEYS: &'static [&'static str] = &[
        "enabled",
        "bufsize",
        "gracetime",
        "resettime",
        "crashflag",
        "crashflag_name",
        "psi",
        "psi_stall_ms",
        "psi_window_ms",
        "psi_kill_ms",
    ];

    /// The five tunables that the module owns (sysctl and module parameter names).
    pub const MODULE_KEYS: &'static [&'static str] = &[
        "crashflag_name",
        "crashflag",
        "resettime",
        "gracetime",
        "bufsize",
    ];

    /// `/run/oom-ext/params` content.
    pub fn to_file(&self) -> String {
        let mut s = String::new();
        for k in Self::KEYS {
            s.push_str(k);
            s.push('=');
            s.push_str(&self.get(k).unwrap_or_default());
            s.push('\n');
        }
        s
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
        let mut v = Vec::new();
        for k in [
            "bufsize",
            "gracetime",
            "resettime",
            "crashflag",
            "crashflag_name",
        ] {
            v.push(format!("{k}={}", self.get(k).unwrap_or_default()));
        }
        v.join(" ")
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
    fn module_args_and_psi_trigger() {
        let p = Params::default();
        assert_eq!(
            p.module_args(),
            "bufsize=32 gracetime=0 resettime=300 crashflag=1 crashflag_name=/oomflag"
        );
        assert_eq!(p.psi_trigger(), "some 150000 1000000");
    }
}
