//! Pure parser for the `oom_ext` keys of the kernel command line, on bytes.
//!
//! Semantics (also in oom-ext(8)): the line ends at the first NUL; words are
//! split exactly as the kernel's `next_arg()` splits them (its `isspace`:
//! `\t \n \v \f \r`, space and 0xa0; double quotes group, a leading quote
//! of the word or of the value and the matching last quote are removed);
//! `-` and `_` are the same in names, as in the kernel's `parameq()`; words
//! after a lone `--` belong to init and are ignored. `oom_ext=0|off|no|false`
//! turns oom_ext off. `oom_ext.KEY=VALUE` sets a key; the last occurrence
//! wins, and if the last occurrence is bad the default applies. Each bad
//! value (a non-UTF-8 one too) gives one [`Diagnostic`]; it never loses the
//! rest of the line.

#![forbid(unsafe_code)]

use crate::params::{Params, Refusal};
use crate::rootfs;
use std::fmt;

/// One refused value: what, which value, the allowed range, what is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The key as written on the command line, e.g. `oom_ext.bufsize`,
    /// escaped for a log line.
    pub name: String,
    /// The parameter it sets, e.g. `bufsize` (`enabled` for `oom_ext=`).
    pub key: String,
    /// The value as written, escaped for a log line and cut.
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

/// [`escape_value`] for raw bytes: valid UTF-8 as there, anything else as
/// `\xNN`.
pub fn escape_bytes(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) => escape_value(s),
        Err(_) => rootfs::escape(v, ECHO_MAX),
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Refusal::UnknownKey => {
                write!(f, "ignoring {}=\"{}\": unknown key", self.name, self.value)
            }
            _ => write!(
                f,
                "ignoring {}=\"{}\": {}, using {}",
                self.name, self.value, self.reason, self.used
            ),
        }
    }
}

/// The kernel's `isspace()` (lib/ctype.c): 0xa0 is a space there too.
pub fn kernel_isspace(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ' | 0xa0)
}

/// One word as the kernel's `next_arg()` returns it: the parameter, the
/// value (`None` without `=`) and the rest of the line (spaces skipped).
/// `args` must not start with a space and must hold no NUL.
pub fn next_arg(args: &[u8]) -> (Vec<u8>, Option<Vec<u8>>, &[u8]) {
    let mut a = args;
    let mut in_quote = false;
    let mut quoted = false;
    if a.first() == Some(&b'"') {
        a = &a[1..];
        in_quote = true;
        quoted = true;
    }
    let mut i = 0;
    let mut equals = 0;
    while i < a.len() {
        if kernel_isspace(a[i]) && !in_quote {
            break;
        }
        if equals == 0 && a[i] == b'=' {
            equals = i;
        }
        if a[i] == b'"' {
            in_quote = !in_quote;
        }
        i += 1;
    }
    // The kernel writes NULs into the word; do the same on a copy.
    let mut buf = a[..i].to_vec();
    buf.push(0);
    let mut val_at = None;
    if equals != 0 {
        buf[equals] = 0;
        let mut v = equals + 1;
        if buf[v] == b'"' {
            v += 1;
            if buf[i - 1] == b'"' {
                buf[i - 1] = 0;
            }
        }
        val_at = Some(v);
    }
    if quoted && i > 0 && buf[i - 1] == b'"' {
        buf[i - 1] = 0;
    }
    let cstr = |from: usize| {
        let t = &buf[from.min(i)..];
        t[..t.iter().position(|&b| b == 0).unwrap_or(t.len())].to_vec()
    };
    let param = cstr(0);
    let val = val_at.map(cstr);
    let rest = if i < a.len() { &a[i + 1..] } else { &a[i..] };
    (param, val, skip_spaces(rest))
}

fn skip_spaces(mut s: &[u8]) -> &[u8] {
    while let Some((&b, rest)) = s.split_first() {
        if !kernel_isspace(b) {
            break;
        }
        s = rest;
    }
    s
}

/// The line up to its first NUL (the kernel's string ends there).
fn c_string(line: &[u8]) -> &[u8] {
    &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())]
}

/// Splits a command line into (param, value) pairs as `parse_args()` does,
/// stopping at a lone `--`.
pub fn args(line: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut rest = skip_spaces(c_string(line));
    while !rest.is_empty() {
        let (param, val, r) = next_arg(rest);
        rest = r;
        if val.is_none() && param == b"--" {
            break;
        }
        out.push((param, val));
    }
    out
}

/// The words of a command line (`param` or `param=value`, quotes removed
/// as the kernel removes them), up to a lone `--`.
pub fn words(line: impl AsRef<[u8]>) -> Vec<Vec<u8>> {
    args(line.as_ref())
        .into_iter()
        .map(|(mut p, v)| {
            if let Some(v) = v {
                p.push(b'=');
                p.extend_from_slice(&v);
            }
            p
        })
        .collect()
}

/// `-` and `_` are the same in parameter names (the kernel's `parameq`).
fn dashes_to_underscores(name: &[u8]) -> Vec<u8> {
    name.iter()
        .map(|&b| if b == b'-' { b'_' } else { b })
        .collect()
}

/// Parses the oom_ext keys of a command line (raw bytes; `&str` works too).
pub fn parse(line: impl AsRef<[u8]>) -> (Params, Vec<Diagnostic>) {
    let mut params = Params::default();
    let defaults = Params::default();
    let mut diags: Vec<Diagnostic> = Vec::new();
    for (name, value) in args(line.as_ref()) {
        let norm = dashes_to_underscores(&name);
        let key: Vec<u8> = if norm == b"oom_ext" {
            if value.is_none() {
                // A bare `oom_ext` is not a request to turn it off or on.
                continue;
            }
            b"enabled".to_vec()
        } else if let Some(k) = norm.strip_prefix(b"oom_ext.") {
            k.to_vec()
        } else {
            continue;
        };
        let value = value.unwrap_or_default();
        let result = match (std::str::from_utf8(&key), std::str::from_utf8(&value)) {
            (Ok("enabled"), _) if norm != b"oom_ext" => Err(Refusal::UnknownKey),
            (Err(_), _) => Err(Refusal::UnknownKey),
            (Ok(k), Ok(v)) => params.set(k, v),
            // No valid value is outside ASCII: U+FFFD is refused by every
            // key with the reason that key gives (or as unknown).
            (Ok(k), Err(_)) => params.set(k, "\u{fffd}"),
        };
        if let Err(reason) = result {
            let key = String::from_utf8_lossy(&key).into_owned();
            if reason != Refusal::UnknownKey {
                // The last occurrence wins even when it is bad: default.
                let d = defaults.get(&key).unwrap_or_default();
                let _ = params.set(&key, &d);
            }
            diags.push(Diagnostic {
                name: escape_bytes(&name),
                key,
                value: escape_bytes(&value),
                reason,
                used: String::new(),
            });
        }
    }
    for d in &mut diags {
        d.used = params.get(&d.key).unwrap_or_default();
    }
    (params, diags)
}

/// `/run/oom-ext/params` content read over the parameters in effect
/// (SIGHUP): line by line as bytes; a bad value keeps the value in effect
/// (not the default), a line that is not UTF-8 or has no `=` is one
/// problem; unknown keys (a newer init) are skipped quietly.
pub fn params_over(base: &Params, text: &[u8]) -> (Params, Vec<String>) {
    let mut p = base.clone();
    let mut problems = Vec::new();
    for (n, raw) in text.split(|&b| b == b'\n').enumerate() {
        let raw = skip_spaces(raw);
        let raw = &raw[..raw.len() - raw.iter().rev().take_while(|&&b| kernel_isspace(b)).count()];
        if raw.is_empty() || raw[0] == b'#' {
            continue;
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            problems.push(format!(
                "line {} is not UTF-8: \"{}\"",
                n + 1,
                escape_bytes(raw)
            ));
            continue;
        };
        let Some((k, v)) = line.split_once('=') else {
            problems.push(format!(
                "line {} has no '=': \"{}\"",
                n + 1,
                escape_value(line)
            ));
            continue;
        };
        match p.set(k, v) {
            Ok(()) | Err(Refusal::UnknownKey) => {}
            Err(e) => problems.push(format!(
                "{}=\"{}\": {e}, keeping {}",
                escape_value(k),
                escape_value(v),
                p.get(k).unwrap_or_default()
            )),
        }
    }
    (p, problems)
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
                "ignoring oom_ext.gracetime=\"-5\": neither 0 (off) nor in 7..86400, using 0",
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
        assert_eq!(
            params.bufsize, 1,
            "the line ends at a NUL, as the kernel's string"
        );
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

    #[test]
    fn defect_2_a_non_utf8_byte_is_one_bad_value_not_a_lost_line() {
        let (params, d) = p("oom_ext=0 x=caf\u{e9}");
        assert!(!params.enabled);
        assert!(d.is_empty());
        let (params, d) =
            parse(b"oom_ext=0 x=caf\xe9 oom_ext.bufsize=7\xff oom_ext.gracetime=30\n");
        assert!(!params.enabled, "oom_ext=0 is kept");
        assert_eq!(params.gracetime, 30, "the words after it are read");
        assert_eq!(params.bufsize, 32);
        let d: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            d,
            vec!["ignoring oom_ext.bufsize=\"7\\xff\": not a number in 0..4096, using 32"]
        );
        let (_, d) = parse(b"oom_ext.caf\xe9=1 oom_ext.crashflag_name=/caf\xc3\xa9");
        let d: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        assert_eq!(d[0], "ignoring oom_ext.caf\\xe9=\"1\": unknown key");
        assert!(
            d[1].contains("/caf\u{e9}") && d[1].contains("0x21..0x7e"),
            "{}",
            d[1]
        );
    }

    #[test]
    fn words_split_exactly_like_next_arg() {
        let w = |l: &[u8]| {
            args(l)
                .into_iter()
                .map(|(p, v)| {
                    (
                        String::from_utf8_lossy(&p).into_owned(),
                        v.map(|v| String::from_utf8_lossy(&v).into_owned()),
                    )
                })
                .collect::<Vec<_>>()
        };
        let s = |p: &str, v: Option<&str>| (p.to_string(), v.map(str::to_string));
        // The kernel's isspace has \v, \f and 0xa0 too.
        assert_eq!(
            w(b"a=1\x0bb=2\x0cc\xa0d\r"),
            vec![
                s("a", Some("1")),
                s("b", Some("2")),
                s("c", None),
                s("d", None)
            ]
        );
        // Only a leading quote of the word or of the value and the last
        // quote go; quotes inside stay and still group spaces.
        assert_eq!(w(b"a=x\"y z\"w"), vec![s("a", Some("x\"y z\"w"))]);
        assert_eq!(w(b"\"a b\""), vec![s("a b", None)]);
        assert_eq!(w(b"a=\""), vec![s("a", Some(""))]);
        // A quote opened by the word and closed inside it: the space splits.
        assert_eq!(
            w(b"\"a=\"b c\"\""),
            vec![s("a", Some("b")), s("c\"\"", None)]
        );
        // The first '=' at index 0 does not count (equals == 0 in C).
        assert_eq!(w(b"=a=b"), vec![s("=a", Some("b"))]);
        assert_eq!(w(b"a -- b"), vec![s("a", None)]);
        assert_eq!(
            w(b"a --=1 b"),
            vec![s("a", None), s("--", Some("1")), s("b", None)]
        );
        assert_eq!(w(b"  \n"), vec![]);
        assert_eq!(w(b"a\0b"), vec![s("a", None)]);
    }

    #[test]
    fn dashes_and_underscores_are_the_same_in_names() {
        let (params, d) = p("oom-ext.psi-kill-ms=0 oom_ext.psi_stall-ms=20 oom-ext=0");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            (params.psi_kill_ms, params.psi_stall_ms, params.enabled),
            (0, 20, false)
        );
    }

    #[test]
    fn defect_10_a_bad_value_on_reload_keeps_the_value_in_effect() {
        let mut base = Params::default();
        base.set("bufsize", "1").unwrap();
        let (p, problems) = params_over(&base, b"bufsize=abc\ngracetime=30\n");
        assert_eq!((p.bufsize, p.gracetime), (1, 30), "not the 32 MiB default");
        assert_eq!(
            problems,
            vec!["bufsize=\"abc\": not a number in 0..4096, keeping 1"]
        );
        // One bad byte loses one line, not the file.
        let (p, problems) = params_over(
            &base,
            b"psi_kill_ms=0\nkernel=caf\xe9\nno equals\nfuture=1\n",
        );
        assert_eq!(p.psi_kill_ms, 0);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("caf\\xe9"), "{problems:?}");
    }
}
