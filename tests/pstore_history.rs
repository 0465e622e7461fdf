//! Issue 14: a pstore finding goes into the history and to the hooks like a
//! flag report, once (it is known by its content, whatever its name or
//! directory), and is removed only once archived. Run with the real binary
//! against fake roots (`--root DIR`), hostile ones included.

mod common;

use std::path::{Path, PathBuf};

const PANIC: &str = "Panic#1 Part1\n\
<0>[   23.4] oom_ext: crash flag: present (/run/late/oomflag)\n\
<0>[   23.5] Kernel panic - not syncing: oom_ext: OOM state lasted gracetime=7 s (crash flag present), panicking to reboot\n";
const LIVE: &str = "sys/fs/pstore/dmesg-ramoops-0";
const HISTORY: &str = "var/lib/oom-ext/history";
const HOOKS_NOT_RUN: &str = "report hooks not run: --root is not /";

fn fake_root(tag: &str) -> PathBuf {
    let r = common::fake_root("pstore-hist", tag, &["proc", "sys/fs/pstore"]);
    std::fs::write(r.join("proc/uptime"), "12.5 20.0\n").unwrap();
    r
}

fn bin(root: &Path, args: &[&str]) -> (i32, String) {
    let (code, out, _) = common::code_out_err(&common::oom_ext(root, args));
    (code, out)
}

fn kmsg(r: &Path) -> String {
    std::fs::read_to_string(r.join("dev/kmsg")).unwrap()
}

/// The archived reports' contents (in name order, which is not the order
/// within one second: `T-1.json` sorts before `T.json`).
fn history(r: &Path) -> Vec<String> {
    let Ok(d) = std::fs::read_dir(r.join(HISTORY)) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = d.map(|e| e.unwrap().path()).collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn set_mtime(p: &Path, unix: i64) {
    let ts = nix::sys::time::TimeSpec::new(unix, 0);
    nix::sys::stat::utimensat(
        None,
        p,
        &ts,
        &ts,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

#[test]
fn a_pstore_finding_is_archived_and_given_to_the_hooks_once() {
    let r = fake_root("once");
    std::fs::write(r.join(LIVE), PANIC).unwrap();
    let (code, out) = bin(&r, &["report", "--json", "--keep"]);
    assert_eq!(code, 3, "{out}");
    let h = history(&r);
    assert_eq!(h.len(), 1, "{h:?}");
    // The history holds what --json printed: the same object.
    assert_eq!(h[0].trim(), out.trim());
    let id = oom_ext::pstore::record_id(PANIC.as_bytes());
    assert!(
        h[0].starts_with(&format!(
            r#"{{"status":"pstore","id":"{id}","record":"/{LIVE}""#
        )),
        "{}",
        h[0]
    );
    let log = kmsg(&r);
    assert_eq!(
        log.matches("report archived as /var/lib/oom-ext/history/")
            .count(),
        1,
        "{log}"
    );
    // The hooks' call (only run when --root is /) came with the archive.
    assert_eq!(log.matches(HOOKS_NOT_RUN).count(), 1, "{log}");

    // Kept, found again: reported, not archived or given to hooks again.
    let (code, again) = bin(&r, &["report", "--json", "--keep"]);
    assert_eq!((code, again.as_str()), (3, out.as_str()));
    assert_eq!(history(&r).len(), 1);
    let log = kmsg(&r);
    assert!(
        log.contains(&format!(
            "pstore record /{LIVE} was archived before as /{HISTORY}/"
        )),
        "{log}"
    );
    assert_eq!(log.matches(HOOKS_NOT_RUN).count(), 1, "{log}");

    // systemd-pstore's copy of the same record, under another name: the
    // same finding. The live one goes now (it is archived).
    let copy = r.join("var/lib/systemd/pstore/1700000000/dmesg.txt");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::write(&copy, PANIC).unwrap();
    let (code, text) = bin(&r, &["report"]);
    assert_eq!(code, 3, "{text}");
    assert_eq!(text.matches("oom-ext: pstore record").count(), 2, "{text}");
    assert!(!r.join(LIVE).exists(), "archived before: removed");
    assert_eq!(history(&r).len(), 1);
    assert_eq!(kmsg(&r).matches(HOOKS_NOT_RUN).count(), 1);

    // The next boot: the copy is an earlier boot's; a new panic is new.
    set_mtime(&copy, 1_000_000_000);
    std::fs::write(r.join(LIVE), PANIC.replace("gracetime=7", "gracetime=9")).unwrap();
    let (code, _) = bin(&r, &["report"]);
    assert_eq!(code, 3);
    let h = history(&r);
    assert_eq!(h.len(), 2, "{h:?}");
    assert!(h.iter().any(|j| j.contains(r#""gracetime_s":9"#)), "{h:?}");
    assert_eq!(kmsg(&r).matches(HOOKS_NOT_RUN).count(), 2);
    assert!(!r.join(LIVE).exists());
    assert_eq!(bin(&r, &["report"]).0, 0, "nothing left to report");
    std::fs::remove_dir_all(&r).unwrap();
}

#[test]
fn a_finding_that_cannot_be_archived_is_kept_and_is_an_error() {
    let r = fake_root("noarchive");
    std::fs::write(r.join(LIVE), PANIC).unwrap();
    // The history cannot be made: a file where its directory goes.
    std::fs::create_dir_all(r.join("var/lib")).unwrap();
    std::fs::write(r.join("var/lib/oom-ext"), "").unwrap();
    let (code, out) = bin(&r, &["report"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("oom-ext: pstore record"),
        "still reported: {out}"
    );
    assert!(r.join(LIVE).exists(), "not archived: kept for the next run");
    let log = kmsg(&r);
    assert!(
        log.contains(&format!("cannot archive the report under /{HISTORY}"))
            && log.contains(&format!("the record /{LIVE} is kept")),
        "{log}"
    );
    std::fs::remove_file(r.join("var/lib/oom-ext")).unwrap();
    assert_eq!(bin(&r, &["report"]).0, 3);
    assert_eq!(history(&r).len(), 1);
    assert!(!r.join(LIVE).exists());
    std::fs::remove_dir_all(&r).unwrap();
}

#[test]
fn a_flag_cannot_pass_itself_off_as_an_archived_finding() {
    let r = fake_root("forged");
    std::fs::write(r.join(LIVE), PANIC).unwrap();
    let id = oom_ext::pstore::record_id(PANIC.as_bytes());
    // A flag whose fields say what a pstore finding's JSON says.
    std::fs::write(
        r.join("oomflag"),
        format!("oom_ext_flag=1\nstatus=pstore\nid={id}\nsource=kernel\n"),
    )
    .unwrap();
    assert_eq!(bin(&r, &["report"]).0, 3);
    let h = history(&r);
    assert_eq!(h.len(), 2, "the flag and the finding: {h:?}");
    assert_eq!(
        h.iter()
            .filter(|j| j.starts_with(r#"{"status":"pstore""#))
            .count(),
        1,
        "{h:?}"
    );
    std::fs::remove_dir_all(&r).unwrap();
}

#[test]
fn hostile_uptime_and_records_are_not_followed_or_read_unbounded() {
    let base = fake_root("hostile");
    let r = base.join("root");
    for d in ["dev", "proc", "sys/fs/pstore", "var/lib/systemd/pstore/1"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("dev/kmsg"), "").unwrap();
    // An archived record from "this boot", if the boot's start is known.
    std::fs::write(r.join("var/lib/systemd/pstore/1/dmesg.txt"), PANIC).unwrap();
    // proc/uptime linked to a file outside the root that says "up for
    // ages": inside the root the link names nothing, so the start of the
    // boot is unknown and the archive is not read.
    std::fs::write(base.join("uptime"), "99999999.0 1.0\n").unwrap();
    std::os::unix::fs::symlink(base.join("uptime"), r.join("proc/uptime")).unwrap();
    let (code, out) = bin(&r, &["report"]);
    assert_eq!(code, 0, "{out}");
    assert!(history(&r).is_empty());
    // A FIFO there does not block.
    std::fs::remove_file(r.join("proc/uptime")).unwrap();
    nix::unistd::mkfifo(
        &r.join("proc/uptime"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let rr = r.clone();
    std::thread::spawn(move || tx.send(bin(&rr, &["report"])).unwrap());
    let (code, out) = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("report blocked on the proc/uptime FIFO");
    assert_eq!(code, 0, "{out}");

    // A huge live record (sparse, 1 GiB) with the panic at its start: found
    // from the first 256 KiB and archived once; a symlinked record that
    // leads out of the root is not read.
    let huge = std::fs::File::create(r.join(LIVE)).unwrap();
    huge.set_len(1 << 30).unwrap();
    std::os::unix::fs::FileExt::write_at(&huge, PANIC.as_bytes(), 0).unwrap();
    drop(huge);
    std::fs::write(base.join("outside"), PANIC.replace("=7", "=8")).unwrap();
    std::os::unix::fs::symlink(base.join("outside"), r.join("sys/fs/pstore/dmesg-link-0")).unwrap();
    for _ in 0..2 {
        let (code, out) = bin(&r, &["report", "--keep"]);
        assert_eq!(code, 3, "{out}");
        assert_eq!(out.matches("oom-ext: pstore record").count(), 1, "{out}");
    }
    let h = history(&r);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h[0].contains(r#""gracetime_s":7"#), "{}", h[0]);
    assert!(base.join("outside").exists());
    std::fs::remove_dir_all(&base).unwrap();
}
