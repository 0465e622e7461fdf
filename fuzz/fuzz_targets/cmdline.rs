#![no_main]
//! The kernel command line (raw bytes, as /proc/cmdline holds them) and
//! /run/oom-ext/params: parse anything, stay in bounds.
use libfuzzer_sys::fuzz_target;
use oom_ext::params::{check_flag_path, Kind, Params, TABLE};

fuzz_target!(|data: &[u8]| {
    let (from_cmdline, diags) = oom_ext::cmdline::parse(data);
    for d in diags {
        let s = d.to_string();
        assert!(!s.contains('\n') && !s.contains('\u{1b}') && s.len() < 512);
    }
    // Params::from_file takes text: a non-UTF-8 line can only be invalid.
    let text = String::from_utf8_lossy(data);
    for p in [from_cmdline, Params::from_file(&text).0] {
        for row in TABLE {
            if let Kind::Number { min, max, off, .. } = row.kind {
                let v: u32 = p.get(row.key).unwrap().parse().unwrap();
                assert!(off && v == 0 || v >= min && v <= max);
            }
        }
        assert!(check_flag_path(&p.crashflag_name).is_ok());
        assert_eq!(Params::from_file(&p.to_file()).0, p);
    }
});
