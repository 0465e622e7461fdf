//! `oom-ext report` on hostile flags, the bounded history and the hooks.

mod common;

use oom_ext::hooks;
use oom_ext::log::{Log, Sink};
use oom_ext::report::{self, Options};
use oom_ext::root::Root;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn fake_root(tag: &str) -> PathBuf {
    common::fake_root("report", tag, &[])
}

fn report_bin(root: &std::path::Path, args: &[&str]) -> (i32, String) {
    let args: Vec<&str> = std::iter::once("report")
        .chain(args.iter().copied())
        .collect();
    let (code, out, _) = common::code_out_err(&common::oom_ext(root, &args));
    (code, out)
}

const FLAG: &str =
    "oom_ext_flag=1\nsource=kernel\nstarted_unix=1700000000\nkernel=6.1.0\nboot_id=b\n";

#[test]
fn symlink_flag_is_reported_not_followed_and_left_alone() {
    let r = fake_root("symlink");
    std::fs::write(r.join("precious"), "secret").unwrap();
    std::os::unix::fs::symlink(r.join("precious"), r.join("oomflag")).unwrap();
    let (code, out) = report_bin(&r, &[]);
    assert_eq!(code, 3);
    assert!(
        out.contains("symlink") && out.contains("not followed") && !out.contains("secret"),
        "{out}"
    );
    assert!(
        r.join("oomflag").symlink_metadata().is_ok(),
        "only a regular file that parses as a flag is removed"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("precious")).unwrap(),
        "secret"
    );
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn fifo_flag_does_not_block() {
    let r = fake_root("fifo");
    nix::unistd::mkfifo(
        &r.join("oomflag"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let start = Instant::now();
    let (code, out) = report_bin(&r, &["--json"]);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(code, 3);
    assert!(
        out.contains("\"status\":\"special\"") && out.contains("FIFO"),
        "{out}"
    );
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn huge_flag_is_read_only_up_to_64k() {
    let r = fake_root("huge");
    let mut text = String::from(FLAG);
    while text.len() < 10 << 20 {
        text.push_str("victim=1 hog 2\n");
    }
    std::fs::write(r.join("oomflag"), &text).unwrap();
    let (code, out) = report_bin(&r, &["--json", "--keep"]);
    assert_eq!(code, 3);
    assert!(
        out.contains("\"status\":\"huge\"") && out.contains("only the start was read"),
        "{}",
        &out[..300.min(out.len())]
    );
    assert!(
        out.len() < 1 << 20,
        "report of a 10 MiB flag is {} bytes",
        out.len()
    );
    assert!(r.join("oomflag").exists(), "--keep leaves it");
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn directory_named_like_the_flag_is_reported_and_left() {
    let r = fake_root("dir");
    std::fs::create_dir_all(r.join("oomflag/sub")).unwrap();
    let (code, out) = report_bin(&r, &[]);
    assert_eq!(code, 3);
    assert!(out.contains("a directory, not a regular file"), "{out}");
    assert!(r.join("oomflag/sub").is_dir());
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn history_keeps_the_newest_20() {
    let r = fake_root("history");
    let root = Root::new(&r);
    let log = Log::new(root.clone(), Sink::Kmsg);
    for i in 0..25 {
        std::fs::write(r.join("oomflag"), format!("{FLAG}oom_events={i}\n")).unwrap();
        let (code, _) = report::run(&root, &log, &Options::default());
        assert_eq!(code, report::EXIT_REPORTED);
        assert!(!r.join("oomflag").exists());
    }
    let h = report::history(&root);
    assert_eq!(h.len(), report::HISTORY_KEEP);
    let newest = std::fs::read_to_string(h.last().unwrap()).unwrap();
    assert!(newest.contains("\"oom_events\":24"), "{newest}");
    let oldest = std::fs::read_to_string(&h[0]).unwrap();
    assert!(oldest.contains("\"oom_events\":5"), "{oldest}");
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn hooks_get_the_json_and_are_bounded_in_time() {
    use std::os::unix::fs::PermissionsExt;
    let r = fake_root("hooks");
    let d = r.join("etc/oom-ext/report.d");
    std::fs::create_dir_all(&d).unwrap();
    let save = d.join("10-save");
    std::fs::write(
        &save,
        format!("#!/bin/sh\ncat > {}\n", r.join("hook-input").display()),
    )
    .unwrap();
    let hang = d.join("20-hang");
    std::fs::write(&hang, "#!/bin/sh\nexec sleep 60\n").unwrap();
    std::fs::write(
        d.join("30-not-executable"),
        "#!/bin/sh\ntouch /should-not-run\n",
    )
    .unwrap();
    for h in [&save, &hang] {
        std::fs::set_permissions(h, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(r.join("oomflag"), FLAG).unwrap();
    let root = Root::new(&r);
    let log = Log::new(root.clone(), Sink::Kmsg);
    let start = Instant::now();
    let opts = Options {
        hook_timeout: Some(Duration::from_millis(500)),
        ..Options::default()
    };
    let (code, _) = report::run(&root, &log, &opts);
    assert_eq!(code, 3);
    assert!(!r.join("hook-input").exists(), "--root not / runs no hook");
    let kmsg = std::fs::read_to_string(r.join("dev/kmsg")).unwrap();
    assert!(
        kmsg.contains("report hooks not run: --root is not /"),
        "{kmsg}"
    );
    let json = std::fs::read_to_string(&report::history(&root)[0]).unwrap();
    hooks::run_all(&root, json.trim_end(), &log, Duration::from_millis(500));
    assert!(start.elapsed() < Duration::from_secs(10));
    let input = std::fs::read_to_string(r.join("hook-input")).unwrap();
    assert!(
        input.starts_with("{\"flag\":\"/oomflag\",\"status\":\"ok\""),
        "{input}"
    );
    let kmsg = std::fs::read_to_string(r.join("dev/kmsg")).unwrap();
    assert!(kmsg.contains("20-hang: killed after"), "{kmsg}");
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn no_flag_exits_0_and_corrupt_candidates_from_the_cmdline_are_found() {
    let r = fake_root("cmdline");
    assert_eq!(report_bin(&r, &[]).0, 0);
    std::fs::create_dir_all(r.join("proc")).unwrap();
    std::fs::write(
        r.join("proc/cmdline"),
        "oom_ext.crashflag_name=/data/flag\n",
    )
    .unwrap();
    std::fs::create_dir_all(r.join("data")).unwrap();
    std::fs::write(r.join("data/flag"), FLAG).unwrap();
    let (code, out) = report_bin(&r, &[]);
    assert_eq!(code, 3);
    assert!(out.contains("/data/flag"), "{out}");
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn a_policy_panic_flag_is_reported_as_such() {
    let r = fake_root("panic");
    std::fs::write(r.join("oomflag"), format!("{FLAG}policy=panic\n")).unwrap();
    let (code, out) = report_bin(&r, &["--keep"]);
    assert_eq!(code, 3);
    assert!(out.contains("ended by:    policy=panic"), "{out}");
    let (_, json) = report_bin(&r, &["--json", "--keep"]);
    assert!(json.contains("\"policy_panic\":true"), "{json}");
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn cgroup_kills_in_the_flag_are_reported_apart_from_the_victims() {
    let r = fake_root("memcg");
    // The guard appends the count again at each cgroup kill: the last wins.
    std::fs::write(
        r.join("oomflag"),
        format!("{FLAG}memcg_kills=2\nvictim=7 hog 100\nmemcg_kills=3\n"),
    )
    .unwrap();
    let (code, out) = report_bin(&r, &["--keep"]);
    assert_eq!(code, 3);
    assert!(out.contains("  victims:     1\n"), "{out}");
    assert!(
        out.contains("  cgroup OOMs: 3 (processes killed at a cgroup's memory limit"),
        "{out}"
    );
    let (_, json) = report_bin(&r, &["--json", "--keep"]);
    assert!(json.contains("\"memcg_kills\":3"), "{json}");
    assert!(json.contains("memcg_kills=3"), "summary: {json}");
    std::fs::remove_dir_all(r).unwrap();
}
