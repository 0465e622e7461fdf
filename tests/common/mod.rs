//! What the integration tests share: a fake root for `--root` and a run of
//! the binary in it.
#![allow(dead_code)] // each test crate uses a part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

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

/// [`oom_ext`], killed after `secs`: `None` when it had to be (it
/// blocked); else the exit code and stdout followed by stderr.
pub fn oom_ext_within(root: &Path, args: &[&str], secs: u64) -> Option<(i32, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    ))
}
