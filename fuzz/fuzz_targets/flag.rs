#![no_main]
//! Crash flags, module status, kernel log lines: any bytes, no panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = oom_ext::flag::parse(data) {
        for v in &d.victims {
            assert_eq!(v.line().matches('\n').count(), 1);
        }
    }
    let _ = oom_ext::module_status::parse(data);
    let s = String::from_utf8_lossy(data);
    let _ = oom_ext::guard::kernel_text::parse_kill(&s);
    let _ = oom_ext::guard::kernel_text::parse_context(&s);
    let _ = oom_ext::modload::find_in_modules_dep(&s, "oom_ext");
});
