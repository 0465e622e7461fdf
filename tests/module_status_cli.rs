//! `oom-ext status` shows what the module's last OOM entry released
//! (`last_release_bytes`, issue 14), and still reads an older module's
//! status without that key: the real binary against fake roots.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fake_root(tag: &str, status: &str) -> PathBuf {
    let r = std::env::temp_dir().join(format!("oom-ext-modstatus-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&r);
    for d in [
        "dev",
        "proc",
        "etc",
        "run/oom-ext",
        "sys/kernel/oom_ext",
        "sys/module/oom_ext",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("dev/kmsg"), "").unwrap();
    std::fs::write(r.join("run/oom-ext/mode"), "kernel\n").unwrap();
    std::fs::write(r.join("sys/kernel/oom_ext/status"), status).unwrap();
    r
}

fn status(root: &Path, json: bool) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oom-ext"));
    c.arg("--root").arg(root).arg("status");
    if json {
        c.arg("--json");
    }
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const OLD: &str = "state=oom\nreserved_bytes=0\ntarget_bytes=33554432\noom_events=1\noom_calls=0\nreleases=1\nrearms=0\nstate_ms=12\nlast_source=trigger\nflag=absent\nflag_path=\nrelease_ns=40123\nrearm_ns=0\n";

#[test]
fn the_last_release_is_shown() {
    let r = fake_root("new", &format!("{OLD}last_release_bytes=6291456\n"));
    let text = status(&r, false);
    assert!(
        text.contains("module:        loaded (the last OOM entry released 6 MiB)\n"),
        "{text}"
    );
    let json = status(&r, true);
    assert!(json.contains("\"last_release_bytes\":6291456"), "{json}");
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn an_older_module_without_the_key_still_parses() {
    let r = fake_root("old", OLD);
    let text = status(&r, false);
    assert!(text.contains("module:        loaded\n"), "{text}");
    assert!(text.contains("state:         oom\n"), "{text}");
    assert!(text.contains("oom_events=1 releases=1"), "{text}");
    let json = status(&r, true);
    assert!(json.contains("\"last_release_bytes\":null"), "{json}");
    assert!(json.contains("\"state\":\"oom\""), "{json}");
    std::fs::remove_dir_all(r).unwrap();
}
