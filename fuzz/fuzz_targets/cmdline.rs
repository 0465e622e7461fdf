#![no_main]
//! The kernel command line and /run/oom-ext/params, both raw bytes as the
//! binary reads them (cmdline::parse, cmdline::params_over): parse
//! anything, stay in bounds, log lines stay one escaped line.
use libfuzzer_sys::fuzz_target;
use oom_ext::params::{check_flag_path, Kind, Params, TABLE};

fuzz_target!(|data: &[u8]| {
    let (from_cmdline, diags) = oom_ext::cmdline::parse(data);
    for d in diags {
        let s = d.to_string();
        assert!(!s.contains('\n') && !s.contains('\u{1b}') && s.len() < 512);
    }
    // /run/oom-ext/params as the guard reads it on SIGHUP: raw bytes over
    // the values in effect (a bad line keeps them).
    let (from_file, problems) = oom_ext::cmdline::params_over(&from_cmdline, data);
    for pr in &problems {
        assert!(
            !pr.contains('\n') && !pr.contains('\u{1b}') && pr.len() < 4096,
            "{pr:?}"
        );
    }
    for p in [from_cmdline, from_file] {
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
