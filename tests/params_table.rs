//! The VM harness spells the module's keys in its own languages; they must
//! match the parameter table (src/params.rs), defaults included.

use oom_ext::params::{module_keys, param, Kind};

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text between `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let i = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not found"))
        + start.len();
    let j = text[i..].find(end).expect("unterminated") + i;
    &text[i..j]
}

/// `{"k": v, ...}` of a one-line Python dict literal: (key, value text).
fn py_dict(body: &str) -> Vec<(String, String)> {
    body.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once(':').expect("key: value");
            (k.trim().trim_matches('"').to_string(), v.trim().to_string())
        })
        .collect()
}

#[test]
fn guest_lib_lists_the_module_keys() {
    let lib = read("tests/vm/guest/lib.sh");
    let keys: Vec<&str> = between(&lib, "OOM_EXT_KEYS=\"", "\"")
        .split_whitespace()
        .collect();
    assert_eq!(keys, module_keys().collect::<Vec<_>>());
}

#[test]
fn scenarios_know_the_module_keys_and_their_defaults() {
    let py = read("tests/vm/oomvm/scenarios.py");
    let want: Vec<&str> = module_keys().collect();
    let bad = py_dict(between(&py, "BAD_VALUES = {", "}"));
    assert_eq!(
        bad.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        want
    );
    let defaults = py_dict(between(&py, "DEFAULTS = {", "}"));
    assert_eq!(
        defaults.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        want
    );
    for (k, v) in defaults {
        let expected = match param(&k).unwrap().kind {
            Kind::Bool { default } => u8::from(default).to_string(),
            Kind::Number { default, .. } => default.to_string(),
            Kind::FlagPath { default } | Kind::Word { default, .. } => format!("\"{default}\""),
        };
        assert_eq!(v, expected, "DEFAULTS[{k:?}]");
    }
}

#[test]
fn the_architecture_tables_cmdline_rows_match_the_table() {
    let doc = read("docs/ARCHITECTURE.md");
    for row in oom_ext::params::TABLE.iter().filter(|r| r.key != "enabled") {
        let cell = format!("| `oom_ext.{}=` |", row.key);
        let line = doc
            .lines()
            .find(|l| l.starts_with(&cell))
            .unwrap_or_else(|| panic!("docs/ARCHITECTURE.md has no row {cell}"));
        let last = line
            .trim_end_matches('|')
            .rsplit('|')
            .next()
            .unwrap()
            .trim();
        let (range, default) = match row.kind {
            Kind::Bool { default } => (None, u8::from(default).to_string()),
            Kind::Number {
                min,
                max,
                default,
                off,
            } => (
                Some(if off {
                    format!("0 or {min}..{max}")
                } else {
                    format!("{min}..{max}")
                }),
                default.to_string(),
            ),
            Kind::FlagPath { default } => (None, format!("`{default}`")),
            Kind::Word { default, .. } => (None, default.to_string()),
        };
        assert_eq!(last, default, "default of {}", row.key);
        if let Some(r) = range {
            assert!(line.contains(&r), "{}: range {r} not in {line:?}", row.key);
        }
    }
}
