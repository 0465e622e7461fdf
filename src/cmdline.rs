//! Pure parser for the `oom_ext` keys of the kernel command line.
//!
//! Semantics (also in oom-ext(8)): words are split like the kernel does
//! (whitespace outside double quotes, quotes removed); words after a lone
//! `--` belong to init and are ignored. `oom_ext=0|off|no|false` turns
//! oom_ext off. `oom_ext.KEY=VALUE` sets a key; the last occurrence wins, and
//! if the last occurrence is bad the default applies. Each bad value gives
//! one [`Diagnostic`].

use crate::params::{Params, Refusal};
use std::fmt;

/// One refused value: what, which value, the allowed range, what is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The key as written on the command line, e.g. `oom_ext.bufsize`.
    pub name: String,
    /// The parameter it sets, e.g. `bufsize` (`enabled` for `oom_ext=`).
    pub key: String,
    pub value: String,
    pub reason: Refusal,
    /// The value in effect instead (filled in after the whole line is read).
    pub used: String,
}

/// At most this many characters of a hostile value are echoed into the log.
const ECHO_MAX: usize = 64;

/// Shows a value safely on one log line: control characters escaped, long
/// values cut.
pub fn escape_value(v: &str) -> String {
    let mut out = String::new();
    for (i, c) in v.chars().enumerate() {
        if i == ECHO_MAX {
            out.push_str("...");
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = escape_value(&self.name);
        match self.reason {
            Refusal::UnknownKey => write!(
                f,
                "ignoring {name}=\"{}\": unknown key",
                escape_value(&self.value)
            ),
            _ => write!(
                f,
                "ignoring {name}=\"{}\": {}, using {}",
                escape_value(&self.value),
                self.reason,
                self.used
            ),
        }
    }
}

/// Splits a command line into words the way the kernel's `next_arg` does.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut have = false;
    for c in line.chars() {
        if c == '"' {
            in_quote = !in_quote;
            have = true;
            continue;
        }
        if !in_quote && (c.is_ascii_whitespace() || c == '\0') {
            if have {
                out.push(std::mem::take(&mut cur));
                have = false;
            }
            continue;
        }
        cur.push(c);
        have = true;
    }
    if have {
        out.push(cur);
    }
    out
}

/// Parses the oom_ext keys of a command line.
pub fn parse(line: &str) -> (Params, Vec<Diagnostic>) {
    let mut params = Params::default();
    let defaults = Params::default();
    let mut diags: Vec<Diagnostic> = Vec::new();
    for word in words(line) {
        if word == "--" {
            break;
        }
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, v),
            None => (word.as_str(), ""),
        };
        let name = key;
        let key = if key == "oom_ext" || key == "oom-ext" {
            if !word.contains('=') {
                // A bare `oom_ext` is not a request to turn it off or on.
                continue;
            }
            "enabled"
        } else if let Some(k) = key
            .strip_prefix("oom_ext.")
            .or_else(|| key.strip_prefix("oom-ext."))
        {
            k
        } else {
            continue;
        };
        let result = if name != "oom_ext" && name != "oom-ext" && key == "enabled" {
            Err(Refusal::UnknownKey) // the switch is `oom_ext=`, not a key
        } else {
            params.set(key, value)
        };
        match result {
            Ok(()) => {}
            Err(reason) => {
                if reason != Refusal::UnknownKey {
                    // The last occurrence wins even when it is bad: default.
                    let d = defaults.get(key).unwrap_or_default();
                    let _ = params.set(key, &d);
                }
                diags.push(Diagnostic {
                    name: name.to_string(),
                    key: key.to_string(),
                    value: value.to_string(),
                    reason,
                    used: String::new(),
                });
            }
        }
    }
    for d in &mut diags {
        d.used = params.get(&d.key).unwrap_or_default();
    }
    (params, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> (Params, Vec<String>) {
        let (p, d) = parse(line);
        (p, d.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn empty_and_unrelated_lines_give_defaults() {
        assert_eq!(p(""), (Params::default(), vec![]));
        assert_eq!(
            p("BOOT_IMAGE=/vmlinuz root=UUID=x ro quiet oom_extx.bufsize=9 oom_ext_bufsize=3"),
            (Params::default(), vec![])
        );
    }

    #[test]
    fn keys_are_read_and_the_last_occurrence_wins() {
        let (params, d) = p("oom_ext.bufsize=64 oom_ext.gracetime=30 oom_ext.bufsize=128 oom_ext.resettime=5 oom_ext.crashflag=0 oom_ext.crashflag_name=/var/oomflag");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(params.bufsize, 128);
        assert_eq!(params.gracetime, 30);
        assert_eq!(params.resettime, 5);
        assert!(!params.crashflag);
        assert_eq!(params.crashflag_name, "/var/oomflag");
    }

    #[test]
    fn off_switch() {
        assert!(!p("oom_ext=0").0.enabled);
        assert!(!p("oom_ext=off").0.enabled);
        assert!(p("oom_ext=0 oom_ext=1").0.enabled);
        assert!(p("oom_ext").0.enabled);
        let (params, d) = p("oom_ext=maybe");
        assert!(params.enabled);
        assert_eq!(d, vec!["ignoring oom_ext=\"maybe\": not a boolean (1|yes|true|on or 0|no|false|off), using 1"]);
    }

    #[test]
    fn bad_values_name_key_value_range_and_default() {
        let (params, d) = p("oom_ext.bufsize=abc oom_ext.gracetime=-5 oom_ext.resettime=99999999999999999999999 oom_ext.crashflag_name=relative/x");
        assert_eq!(params, Params::default());
        assert_eq!(
            d,
            vec![
                "ignoring oom_ext.bufsize=\"abc\": not a number in 0..4096, using 32",
                "ignoring oom_ext.gracetime=\"-5\": not a number in 0..86400, using 0",
                "ignoring oom_ext.resettime=\"99999999999999999999999\": out of range 0..86400, using 300",
                "ignoring oom_ext.crashflag_name=\"relative/x\": not a valid flag path: not absolute, using /oomflag",
            ]
        );
    }

    #[test]
    fn a_bad_last_value_resets_to_the_default_and_says_what_is_used() {
        let (params, d) = p("oom_ext.bufsize=64 oom_ext.bufsize=x");
        assert_eq!(params.bufsize, 32);
        assert_eq!(
            d,
            vec!["ignoring oom_ext.bufsize=\"x\": not a number in 0..4096, using 32"]
        );
        let (params, d) = p("oom_ext.bufsize=x oom_ext.bufsize=64");
        assert_eq!(params.bufsize, 64);
        assert_eq!(
            d,
            vec!["ignoring oom_ext.bufsize=\"x\": not a number in 0..4096, using 64"]
        );
    }

    #[test]
    fn quotes_are_handled_like_the_kernel() {
        let (params, d) = p("a=\"x y\" \"oom_ext.bufsize=7\" oom_ext.gracetime=\"9\"");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!((params.bufsize, params.gracetime), (7, 9));
        // A quoted space cannot sneak into a path.
        let (params, d) = p("oom_ext.crashflag_name=\"/a b\"");
        assert_eq!(params.crashflag_name, "/oomflag");
        assert_eq!(d.len(), 1);
        // An unterminated quote swallows the rest of the line.
        let (params, _) = p("x=\"unterminated oom_ext.bufsize=7");
        assert_eq!(params.bufsize, 32);
    }

    #[test]
    fn words_after_double_dash_belong_to_init() {
        assert_eq!(p("oom_ext.bufsize=7 -- oom_ext.bufsize=9").0.bufsize, 7);
    }

    #[test]
    fn hostile_values_are_escaped_and_cut_in_the_log() {
        let (params, d) = p("oom_ext.bufsize=\u{202e}12\u{1b}[31m");
        assert_eq!(params.bufsize, 32);
        assert_eq!(d[0], "ignoring oom_ext.bufsize=\"\\u{202e}12\\u{1b}[31m\": not a number in 0..4096, using 32");
        let (_, d) = p(&format!("oom_ext.bufsize={}", "9".repeat(5000)));
        assert!(d[0].len() < 200, "{}", d[0]);
        let (params, d) = p("oom_ext.bufsize=1\x002");
        assert_eq!(params.bufsize, 1, "NUL splits words");
        assert!(d.is_empty());
        let (_, d) = p("oom_ext.bufsize=");
        assert_eq!(
            d,
            vec!["ignoring oom_ext.bufsize=\"\": not a number in 0..4096, using 32"]
        );
    }

    #[test]
    fn unknown_keys_are_named_once() {
        let (params, d) = p("oom_ext.bufsise=64 oom_ext.enabled=0");
        assert_eq!(params, Params::default());
        assert_eq!(
            d,
            vec![
                "ignoring oom_ext.bufsise=\"64\": unknown key",
                "ignoring oom_ext.enabled=\"0\": unknown key"
            ]
        );
    }

    #[test]
    fn stall_keys() {
        let (params, d) = p("oom_ext.psi=0 oom_ext.psi_stall_ms=200 oom_ext.psi_window_ms=2000 oom_ext.psi_kill_ms=0");
        assert!(d.is_empty());
        assert!(!params.psi);
        assert_eq!(params.psi_trigger(), "some 200000 2000000");
        assert_eq!(params.psi_kill_ms, 0);
        let (_, d) = p("oom_ext.psi_window_ms=100");
        assert_eq!(
            d,
            vec!["ignoring oom_ext.psi_window_ms=\"100\": out of range 500..10000, using 1000"]
        );
    }
}
