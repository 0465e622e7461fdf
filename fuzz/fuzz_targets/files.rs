#![no_main]
//! The report's and status's file layer, fed raw bytes through real files
//! in a fake root: the flag, the module status, guard.state and the last
//! archived report hold the input. What comes out (report JSON and text,
//! status JSON, text and Prometheus) stays well-formed: no raw control
//! byte in JSON strings or on a terminal line, Prometheus lines of the
//! exposition format. (tests/formats.rs checks the same with Python's json
//! and prometheus_client.)
use libfuzzer_sys::fuzz_target;
use oom_ext::root::Root;
use std::path::PathBuf;

fn root() -> PathBuf {
    let r = std::env::temp_dir().join(format!("oom-ext-fuzz-files-{}", std::process::id()));
    for d in ["run/oom-ext", "sys/kernel/oom_ext", "var/lib/oom-ext/history", "dev"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    r
}

fn terminal_safe(s: &str) {
    assert!(!s.chars().any(|c| c.is_control() && c != '\n'), "{s:?}");
}

fuzz_target!(|data: &[u8]| {
    let r = root();
    std::fs::write(r.join("oomflag"), data).unwrap();
    std::fs::write(r.join("sys/kernel/oom_ext/status"), data).unwrap();
    std::fs::write(r.join("run/oom-ext/guard.state"), data).unwrap();
    std::fs::write(r.join("var/lib/oom-ext/history/1700000000.json"), data).unwrap();
    let root = Root::new(&r);
    if let Ok(Some(rep)) = oom_ext::report::inspect(&root, "/oomflag", 1) {
        let j = rep.json();
        assert!(!j.bytes().any(|b| b < 0x20), "{j:?}");
        terminal_safe(&rep.human());
        terminal_safe(&rep.log_line());
    }
    let st = oom_ext::status_cmd::gather(&root);
    let j = st.json();
    assert!(!j.bytes().any(|b| b < 0x20), "{j:?}");
    terminal_safe(&st.human());
    for line in st.prometheus().lines() {
        if line.starts_with('#') {
            continue;
        }
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<u64>().is_ok(), "{line}");
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_{}=\"".contains(&b)), "{line}");
    }
});
