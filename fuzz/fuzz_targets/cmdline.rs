#![no_main]
//! The kernel command line and /run/oom-ext/params: parse anything, stay in bounds.
use libfuzzer_sys::fuzz_target;
use oom_ext::params::{check_flag_path, Params, NUMERIC};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    for p in [oom_ext::cmdline::parse(&line).0, Params::from_file(&line).0] {
        for (k, min, max) in NUMERIC {
            let v: u32 = p.get(k).unwrap().parse().unwrap();
            assert!(v >= *min && v <= *max);
        }
        assert!(check_flag_path(&p.crashflag_name).is_ok());
        assert_eq!(Params::from_file(&p.to_file()).0, p);
    }
});
