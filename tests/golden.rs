//! Golden-directory tests: `tests/golden/NN-case/root` is copied to a fresh
//! directory, `oom-ext --root DIR <args from cmd>` runs against it, and
//! `expected/` is compared:
//! - `expected/stdout`, `expected/exit`: output and exit code;
//! - `expected/files/PATH`: the file PATH under the root after the run
//!   (`dev/kmsg` with `[pid]` normalized to `[PID]`);
//! - `expected/absent`: paths (one a line) that must not exist afterwards;
//! - `mtime`: "PATH UNIX_SECONDS" lines applied to the copied root.

use std::path::{Path, PathBuf};
use std::process::Command;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&e.path(), &dst);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), dst).unwrap();
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn files_under(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, base, out);
        } else {
            out.push(p.strip_prefix(base).unwrap().to_path_buf());
        }
    }
}

fn normalize_pids(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("oom-ext[") {
        out.push_str(&rest[..i + 8]);
        rest = &rest[i + 8..];
        let end = rest.find(']').unwrap_or(0);
        if rest[..end].bytes().all(|b| b.is_ascii_digit()) {
            out.push_str("PID");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

fn run_case(case: &Path) -> Result<(), String> {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let tmp = std::env::temp_dir().join(format!("oom-ext-golden-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_tree(&case.join("root"), &tmp);
    // `mtime`: "PATH UNIX_SECONDS" lines (git does not keep mtimes).
    if let Ok(m) = std::fs::read_to_string(case.join("mtime")) {
        for line in m.lines() {
            let (p, t) = line.split_once(' ').unwrap();
            let ts = nix::sys::time::TimeSpec::new(t.trim().parse().unwrap(), 0);
            nix::sys::stat::utimensat(
                None,
                &tmp.join(p),
                &ts,
                &ts,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .unwrap();
        }
    }
    let cmd = std::fs::read_to_string(case.join("cmd")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(&tmp)
        .args(cmd.split_whitespace())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).replace(&tmp.display().to_string(), "");
    let exp = case.join("expected");
    let mut errs = Vec::new();
    if let Ok(want) = std::fs::read_to_string(exp.join("stdout")) {
        if want != stdout {
            errs.push(format!(
                "stdout differs:\n--- want\n{want}--- got\n{stdout}"
            ));
        }
    }
    let want_code: i32 = std::fs::read_to_string(exp.join("exit"))
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(0);
    if out.status.code() != Some(want_code) {
        errs.push(format!(
            "exit {:?}, want {want_code}; stderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if exp.join("files").is_dir() {
        let mut files = Vec::new();
        files_under(&exp.join("files"), &exp.join("files"), &mut files);
        for f in files {
            let want = std::fs::read_to_string(exp.join("files").join(&f)).unwrap();
            match std::fs::read_to_string(tmp.join(&f)) {
                Ok(got) => {
                    let got = normalize_pids(&got);
                    if got != want {
                        errs.push(format!(
                            "{} differs:\n--- want\n{want}--- got\n{got}",
                            f.display()
                        ));
                    }
                }
                Err(e) => errs.push(format!("{}: {e}", f.display())),
            }
        }
    }
    if let Ok(absent) = std::fs::read_to_string(exp.join("absent")) {
        for p in absent.lines().filter(|l| !l.is_empty()) {
            if tmp.join(p).symlink_metadata().is_ok() {
                errs.push(format!("{p} should not exist"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("case {name}:\n{}", errs.join("\n")))
    }
}

#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 8,
        "golden cases missing in {}",
        dir.display()
    );
    let failures: Vec<String> = cases.iter().filter_map(|c| run_case(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn pid_normalization() {
    assert_eq!(
        normalize_pids("<28>oom-ext[123]: a\n<30>oom-ext[9]: b"),
        "<28>oom-ext[PID]: a\n<30>oom-ext[PID]: b"
    );
}
