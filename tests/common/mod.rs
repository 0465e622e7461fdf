//! What the integration tests share: a fake root for `--root` and a run of
//! the binary in it.
#![allow(dead_code)] // each test crate uses a part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A new, empty `oom-ext-NAME-TAG-PID` under the temp dir with `dirs` and
/// an empty `dev/kmsg` (every command logs there).
pub fn fake_root(name: &str, tag: &str, dirs: &[&str]) -> PathBuf {
    let r = std::env::temp_dir().join(format!("oom-ext-{name}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&r);
    for d in dirs.iter().chain(&["dev"]) {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("dev/kmsg"), "").unwrap();
    r
}

/// `oom-ext --root ROOT ARGS…`, run to its end.
pub fn oom_ext(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

/// Exit code (-1 when killed by a signal), stdout, stderr.
pub fn code_out_err(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
