//! `oom-ext on-hang apply|undo` in a fake root, three boots played through
//! the binary: hang, hang, masked; then the report and undo.

mod common;

use std::path::{Path, PathBuf};

fn fake_root(tag: &str) -> PathBuf {
    common::fake_root(
        "onhang",
        tag,
        &["etc/oom-ext", "proc/sys/kernel/random", "run"],
    )
}

/// Exit code and stdout followed by stderr.
fn bin(root: &Path, args: &[&str]) -> (i32, String) {
    let (code, out, err) = common::code_out_err(&common::oom_ext(root, args));
    (code, out + &err)
}

/// One boot `id` that ends in a hang with `unit`'s process the top victim
/// (and a smaller one elsewhere). /run is emptied as a reboot does.
fn boot(r: &Path, id: &str, hang_unit: Option<&str>) -> String {
    std::fs::remove_dir_all(r.join("run")).unwrap();
    std::fs::create_dir_all(r.join("run")).unwrap();
    std::fs::write(r.join("proc/sys/kernel/random/boot_id"), format!("{id}\n")).unwrap();
    let (code, out) = bin(r, &["on-hang", "apply"]);
    assert!(code == 0, "apply: {code} {out}");
    // The report archives the previous boot's flag.
    let (code, _) = bin(r, &["report"]);
    assert!(code == 0 || code == 3, "report: {code}");
    if let Some(unit) = hang_unit {
        let flag = format!(
            "oom_ext_flag=1\nsource=kernel\nstarted_unix=1700000000\nboot_id={id}\n\
             victim=10 small 100\nvictim_cgroup=10 /system.slice/small.service\n\
             victim=11 hog 900000\nvictim_cgroup=11 /system.slice/{unit}\n"
        );
        std::fs::write(r.join("oomflag"), flag).unwrap();
    }
    out
}

const MASK: &str = "run/systemd/system.control/leak.service";

#[test]
fn two_hangs_in_a_row_mask_the_leaking_unit_for_the_third_boot() {
    let r = fake_root("mask");
    std::fs::write(r.join("etc/oom-ext/policy.conf"), "on_hang = mask-unit\n").unwrap();
    boot(&r, "b1", Some("leak.service"));
    let out = boot(&r, "b2", Some("leak.service"));
    assert!(
        out.contains("1 hang boot(s) in a row; reported only"),
        "{out}"
    );
    assert!(r.join(MASK).symlink_metadata().is_err());
    let out = boot(&r, "b3", None);
    assert!(
        out.contains("2 hang boot(s) in a row; masked leak.service"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_link(r.join(MASK)).unwrap(),
        Path::new("/dev/null")
    );
    // The report of b3 (archived) and status carry it.
    let newest = std::fs::read_dir(r.join("var/lib/oom-ext/history"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|t| t.contains("\"boot_id\":\"b2\""))
        .unwrap();
    assert!(
        newest.contains(r#""on_hang":{"action":"mask-unit","unit":"leak.service""#),
        "{newest}"
    );
    assert!(newest.contains(r#""reported_boot_id":"b3""#), "{newest}");
    assert!(
        newest.contains(r#""cgroup":"/system.slice/leak.service","unit":"leak.service""#),
        "{newest}"
    );
    let (_, st) = bin(&r, &["status"]);
    assert!(
        st.contains("on hang:       mask-unit after 2 hang boot(s) in a row"),
        "{st}"
    );
    assert!(
        st.contains("masked leak.service for this boot (undo: oom-ext on-hang undo)"),
        "{st}"
    );
    let (code, out) = bin(&r, &["on-hang", "undo"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("unmasked leak.service"), "{out}");
    assert!(r.join(MASK).symlink_metadata().is_err());
    let (_, st) = bin(&r, &["status", "--json"]);
    assert!(st.contains(r#""on_hang":{"on_hang":"mask-unit","on_hang_boots":2,"this_boot":{"action":"mask-unit""#), "{st}");
    assert!(
        st.contains(r#""undone":"#) && !st.contains(r#""undone":null"#),
        "{st}"
    );
    let (_, out) = bin(&r, &["on-hang", "undo"]);
    assert!(out.contains("already undone"), "{out}");
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn a_boot_without_a_hang_breaks_the_chain_and_the_command_line_overrides() {
    let r = fake_root("chain");
    std::fs::write(
        r.join("etc/oom-ext/policy.conf"),
        "on_hang = mask-unit\non_hang_boots = 2\n",
    )
    .unwrap();
    boot(&r, "b1", Some("leak.service"));
    boot(&r, "b2", None);
    boot(&r, "b3", Some("leak.service"));
    let out = boot(&r, "b4", None);
    assert!(
        out.contains("1 hang boot(s) in a row; reported only"),
        "{out}"
    );
    // on_hang_boots=1 on the command line: due now.
    std::fs::write(r.join("proc/cmdline"), "quiet oom_ext.on_hang_boots=1\n").unwrap();
    boot(&r, "b5", Some("leak.service"));
    let out = boot(&r, "b6", None);
    assert!(out.contains("masked leak.service"), "{out}");
    // oom_ext.on_hang=report on the command line: nothing is done.
    std::fs::write(
        r.join("proc/cmdline"),
        "oom_ext.on_hang=report oom_ext.on_hang_boots=1\n",
    )
    .unwrap();
    boot(&r, "b7", Some("leak.service"));
    let out = boot(&r, "b8", None);
    assert!(out.contains("on_hang=report after 1 boot(s)"), "{out}");
    assert!(r.join(MASK).symlink_metadata().is_err());
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn a_unit_the_boot_needs_is_refused_and_an_existing_file_left_alone() {
    let r = fake_root("refuse");
    std::fs::write(
        r.join("etc/oom-ext/policy.conf"),
        "on_hang = mask-unit\non_hang_boots = 1\n",
    )
    .unwrap();
    boot(&r, "b1", Some("dbus.service"));
    let out = boot(&r, "b2", None);
    assert!(
        out.contains("not masking dbus.service: the boot needs it"),
        "{out}"
    );
    assert!(r.join("run/systemd/system.control").read_dir().is_err());
    let (_, out) = bin(&r, &["on-hang", "undo"]);
    assert!(out.contains("nothing to undo"), "{out}");
    // A unit file of someone else's at the mask's place: not replaced.
    boot(&r, "b3", Some("leak.service"));
    std::fs::remove_dir_all(r.join("run")).unwrap();
    std::fs::create_dir_all(r.join("run/systemd/system.control")).unwrap();
    std::fs::write(r.join(MASK), "[Service]\n").unwrap();
    let (code, out) = bin(&r, &["on-hang", "apply"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("exists and is not a mask: left alone"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(r.join(MASK)).unwrap(),
        "[Service]\n"
    );
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn rescue_and_no_flag() {
    let r = fake_root("rescue");
    let (code, out) = bin(&r, &["on-hang", "apply"]);
    assert_eq!(code, 0);
    assert!(out.contains("no crash flag"), "{out}");
    assert!(!r.join("run/oom-ext/on-hang").exists());
    let (code, _) = bin(&r, &["on-hang", "bogus"]);
    assert_eq!(code, 2);
    std::fs::write(
        r.join("etc/oom-ext/policy.conf"),
        "on_hang = rescue\non_hang_boots = 1\n",
    )
    .unwrap();
    boot(&r, "b1", Some("leak.service"));
    let out = boot(&r, "b2", None);
    assert!(out.contains("booted into rescue.target"), "{out}");
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn undo_removes_only_oom_ext_s_own_mask_whatever_the_record_says() {
    // A record pointing at a permanent mask in /etc (or with a unit name
    // that leads elsewhere) must not make undo remove it.
    for (unit, path) in [
        ("leak.service", "/etc/systemd/system/leak.service"),
        ("../../../etc/systemd/system/leak.service", ""),
    ] {
        let r = fake_root("undo-hostile");
        std::fs::create_dir_all(r.join("etc/systemd/system")).unwrap();
        std::os::unix::fs::symlink("/dev/null", r.join("etc/systemd/system/leak.service")).unwrap();
        std::fs::create_dir_all(r.join("run/oom-ext")).unwrap();
        let mut rec = format!("action=mask-unit\nunit={unit}\nhang_boots=2\non_hang=mask-unit\non_hang_boots=2\nboots=b1 b2\ntime=1\n");
        if !path.is_empty() {
            rec += &format!("path={path}\n");
        }
        std::fs::write(r.join("run/oom-ext/on-hang"), rec).unwrap();
        let (code, out) = bin(&r, &["on-hang", "undo"]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("left alone"), "{out}");
        assert!(r
            .join("etc/systemd/system/leak.service")
            .symlink_metadata()
            .is_ok());
        std::fs::remove_dir_all(&r).unwrap();
    }
}

#[test]
fn a_fifo_or_a_huge_on_hang_record_neither_blocks_nor_is_believed() {
    let r = fake_root("record-hostile");
    std::fs::create_dir_all(r.join("run/oom-ext")).unwrap();
    let rec = r.join("run/oom-ext/on-hang");
    nix::unistd::mkfifo(&rec, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for args in [&["on-hang", "undo"][..], &["status"][..]] {
        let (code, out) = common::oom_ext_within(&r, args, 10)
            .unwrap_or_else(|| panic!("{args:?} blocked on a FIFO record"));
        assert!(code == 0 || code == 1, "{args:?}: {code} {out}");
        assert!(!out.contains("undone"), "{args:?}: {out}");
    }
    std::fs::remove_file(&rec).unwrap();
    // A record far over any real one, ending in a mask-unit action.
    let mut big = "x".repeat(8 << 20);
    big.push_str("\naction=mask-unit\nunit=leak.service\n");
    std::fs::write(&rec, big).unwrap();
    std::fs::create_dir_all(r.join("run/systemd/system.control")).unwrap();
    std::os::unix::fs::symlink("/dev/null", r.join(MASK)).unwrap();
    let (code, out) = common::oom_ext_within(&r, &["on-hang", "undo"], 10).expect("blocked");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to undo"), "{out}");
    assert!(
        r.join(MASK).symlink_metadata().is_ok(),
        "a huge record was believed"
    );
    std::fs::remove_dir_all(&r).unwrap();
}
