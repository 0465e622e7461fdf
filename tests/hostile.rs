//! Issue 13, "a root process that trusts no file": one regression test per
//! listed defect, named after it (defect_NN_...), run against fake roots
//! with the real binary where the defect was seen through it.

mod common;

use oom_ext::hooks;
use oom_ext::log::{Log, Sink};
use oom_ext::report::{self, Options};
use oom_ext::root::Root;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The setup: `mkdir -p $R/dev $R/proc $R/etc $R/run/oom-ext; : >$R/dev/kmsg`.
fn fake_root(tag: &str) -> PathBuf {
    common::fake_root("hostile", tag, &["proc", "etc", "run/oom-ext"])
}

fn bin(root: &Path, args: &[&str]) -> (i32, String, String) {
    common::code_out_err(&common::oom_ext(root, args))
}

fn kmsg(r: &Path) -> String {
    std::fs::read_to_string(r.join("dev/kmsg")).unwrap()
}

const FLAG: &str =
    "oom_ext_flag=1\nsource=kernel\nstarted_unix=1700000000\nkernel=6.1.0\nboot_id=b\n";

#[test]
fn defect_01_symlink_at_the_textfile_temp_name_is_not_followed() {
    let r = fake_root("d01");
    let t = r.join("t");
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(r.join("victim"), "precious").unwrap();
    std::os::unix::fs::symlink(r.join("victim"), t.join("oom_ext.tmp")).unwrap();
    std::os::unix::fs::symlink(r.join("victim"), t.join("oom_ext.prom.tmp")).unwrap();
    let (code, _, err) = bin(&r, &["status", "--textfile", t.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(r.join("victim")).unwrap(),
        "precious"
    );
    assert!(std::fs::read_to_string(t.join("oom_ext.prom"))
        .unwrap()
        .contains("oom_ext_guard_up 0"));
    // A symlink at the final name is replaced, not followed.
    std::fs::remove_file(t.join("oom_ext.prom")).unwrap();
    std::os::unix::fs::symlink(r.join("victim"), t.join("oom_ext.prom")).unwrap();
    assert_eq!(bin(&r, &["status", "--textfile", t.to_str().unwrap()]).0, 0);
    assert_eq!(
        std::fs::read_to_string(r.join("victim")).unwrap(),
        "precious"
    );
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn defect_02_a_non_utf8_byte_in_proc_cmdline_does_not_lose_oom_ext_0() {
    let r = fake_root("d02");
    std::fs::write(r.join("proc/cmdline"), b"oom_ext=0 x=caf\xe9\n").unwrap();
    let (code, _, _) = bin(&r, &["init", "--no-guard"]);
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(r.join("run/oom-ext/mode")).unwrap(),
        "off\n"
    );
    // A bad byte in an oom_ext value: one line, the rest of the line kept.
    std::fs::write(
        r.join("proc/cmdline"),
        b"oom_ext.bufsize=6\xff4 oom_ext.gracetime=7\n",
    )
    .unwrap();
    let (_, out, _) = bin(&r, &["init", "--plan"]);
    assert!(out.contains("gracetime=7"), "{out}");
    assert!(
        out.contains("oom_ext.bufsize=\\\"6\\\\xff4\\\"") || out.contains("6\\xff4"),
        "{out}"
    );
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn defect_03_report_deletes_only_a_regular_file_that_parses_as_a_flag() {
    let r = fake_root("d03");
    std::fs::write(
        r.join("run/oom-ext/params"),
        "crashflag_name=/etc/hostname\n",
    )
    .unwrap();
    std::fs::write(r.join("etc/hostname"), "h\n").unwrap();
    let (code, out, _) = bin(&r, &["report"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("not an oom_ext flag"), "{out}");
    assert_eq!(
        std::fs::read_to_string(r.join("etc/hostname")).unwrap(),
        "h\n"
    );
    assert!(kmsg(&r).contains("left in place"), "{}", kmsg(&r));
    // A FIFO or a device there: reported, left.
    std::fs::remove_file(r.join("etc/hostname")).unwrap();
    nix::unistd::mkfifo(
        &r.join("etc/hostname"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    assert_eq!(bin(&r, &["report"]).0, 3);
    assert!(r.join("etc/hostname").symlink_metadata().is_ok());
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn defect_04_report_flag_with_dotdot_is_refused() {
    let base = fake_root("d04");
    let r = base.join("root");
    std::fs::create_dir_all(r.join("dev")).unwrap();
    std::fs::write(r.join("dev/kmsg"), "").unwrap();
    std::fs::write(base.join("f"), FLAG).unwrap();
    let (code, _, err) = bin(&r, &["report", "--flag", "/../f"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(".. component"), "{err}");
    assert!(base.join("f").exists());
    // Through a symlink inside the root: resolved inside, not found.
    std::os::unix::fs::symlink("../../..", r.join("up")).unwrap();
    let (code, out, _) = bin(&r, &["report", "--flag", "/up/f"]);
    assert_eq!(code, 0, "{out}");
    assert!(base.join("f").exists());
    std::fs::remove_dir_all(base).unwrap();
}

fn alive(pid: i32) -> bool {
    // A zombie no one reaps (no init in a container) counts as dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn defect_05_the_hook_timeout_kills_the_hook_and_its_children() {
    let r = fake_root("d05");
    let d = r.join("etc/oom-ext/report.d");
    std::fs::create_dir_all(&d).unwrap();
    let bg = r.join("bg.pid");
    let left = r.join("left.pid");
    std::fs::write(
        d.join("10-hang"),
        format!(
            "#!/bin/sh\nsleep 47 &\necho $! > {}\nsleep 60\n",
            bg.display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("20-leaves-a-child"),
        format!(
            "#!/bin/sh\nsleep 48 &\necho $! > {}\nexit 0\n",
            left.display()
        ),
    )
    .unwrap();
    for h in ["10-hang", "20-leaves-a-child"] {
        std::fs::set_permissions(d.join(h), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let root = Root::new(&r);
    let log = Log::new(root.clone(), Sink::Kmsg);
    let start = Instant::now();
    hooks::run_all(&root, "{}", &log, Duration::from_millis(700));
    assert!(start.elapsed() < Duration::from_secs(10));
    for f in [&bg, &left] {
        let pid: i32 = std::fs::read_to_string(f).unwrap().trim().parse().unwrap();
        // SIGKILLed: gone within seconds even on a loaded machine (a
        // `sleep 47` that was not killed would still be there).
        let t = Instant::now();
        while alive(pid) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            !alive(pid),
            "{} (pid {pid}) outlived its hook: {state}",
            f.display()
        );
    }
    assert!(
        kmsg(&r).contains("killed after 0.7 s with its process group"),
        "{}",
        kmsg(&r)
    );
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn defect_06_archive_failure_exits_1_and_keeps_the_flag() {
    let r = fake_root("d06");
    std::fs::create_dir_all(r.join("var/lib/oom-ext")).unwrap();
    std::fs::write(r.join("var/lib/oom-ext/history"), "").unwrap();
    std::fs::write(r.join("oomflag"), FLAG).unwrap();
    let (code, out, _) = bin(&r, &["report"]);
    assert_eq!(code, 1, "{out}");
    assert!(r.join("oomflag").exists(), "the report is not lost");
    assert!(
        kmsg(&r).contains("the flag /oomflag is kept"),
        "{}",
        kmsg(&r)
    );
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn defect_07_history_is_pruned_by_its_own_time_and_only_our_names() {
    let r = fake_root("d07");
    let h = r.join("var/lib/oom-ext/history");
    std::fs::create_dir_all(&h).unwrap();
    // 20 reports from a boot whose clock was ahead: future names and
    // future modification times (in the order they were written).
    for i in 1..=20 {
        let p = h.join(format!("19000000{i:02}.json"));
        std::fs::write(&p, "{\"summary\":\"old\"}\n").unwrap();
        let t = nix::sys::time::TimeVal::new(1_900_000_000 + i, 0);
        nix::sys::stat::utimes(&p, &t, &t).unwrap();
    }
    std::fs::write(h.join("notes.json"), "{\"summary\":\"not ours\"}\n").unwrap();
    // A directory where the new report's name would go.
    let now = oom_ext::log::unix_now();
    for t in now..now + 5 {
        std::fs::create_dir_all(h.join(format!("{t:010}.json"))).unwrap();
    }
    std::fs::write(r.join("oomflag"), FLAG).unwrap();
    let (code, _, _) = bin(&r, &["report"]);
    assert_eq!(code, 3, "{}", kmsg(&r));
    let root = Root::new(&r);
    let e = oom_ext::history::entries(&root);
    assert_eq!(e.len(), report::HISTORY_KEEP);
    let new: Vec<_> = e
        .iter()
        .filter(|e| !e.name.starts_with("19000000"))
        .collect();
    assert_eq!(new.len(), 1, "the new report stays: {e:?}");
    let text = std::fs::read_to_string(root.join(new[0].path())).unwrap();
    assert!(text.contains("\"boot_id\":\"b\""), "{text}");
    assert!(h.join("notes.json").exists(), "not ours: not pruned");
    assert!(!h.join("1900000001.json").exists(), "the oldest one went");
    let (_, out, _) = bin(&r, &["status"]);
    assert!(!out.contains("not ours"), "{out}");
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn defect_08_exit_status_does_not_depend_on_the_order_of_candidates() {
    // An unreadable candidate (its parent is a file: ENOTDIR, even as root)
    // and a found flag, in both orders: 1 both times.
    for (params_flag, found_at) in [
        ("/etc/hostname/flag", "oomflag"),
        ("/data/flag", "data/flag"),
    ] {
        let r = fake_root("d08");
        std::fs::write(r.join("etc/hostname"), "h\n").unwrap();
        std::fs::create_dir_all(r.join("data")).unwrap();
        std::fs::write(
            r.join("run/oom-ext/params"),
            format!("crashflag_name={params_flag}\n"),
        )
        .unwrap();
        std::fs::write(
            r.join("proc/cmdline"),
            "oom_ext.crashflag_name=/etc/hostname/flag\n",
        )
        .unwrap();
        std::fs::write(r.join(found_at), FLAG).unwrap();
        let (code, out, _) = bin(&r, &["report"]);
        assert_eq!(code, 1, "{params_flag}: {out}");
        assert!(
            out.contains("cannot read crash flag /etc/hostname/flag"),
            "{out}"
        );
        assert!(out.contains("previous boot hit an OOM hang"), "{out}");
        std::fs::remove_dir_all(r).unwrap();
    }
}

#[test]
fn defect_09_fifos_never_block_init_status_or_report() {
    let r = fake_root("d09");
    let fifo = |p: &str| {
        let p = r.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    };
    fifo("proc/cmdline");
    fifo("run/oom-ext/mode");
    fifo("run/oom-ext/params");
    fifo("run/oom-ext/guard.pid");
    fifo("var/lib/oom-ext/history/1700000000.json");
    fifo("proc/sys/kernel/panic");
    let start = Instant::now();
    let (_, out, _) = bin(&r, &["init", "--plan"]);
    assert!(!out.is_empty());
    let (code, out, _) = bin(&r, &["status", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(bin(&r, &["report"]).0, 0);
    assert!(start.elapsed() < Duration::from_secs(10));
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn defect_12_json_fields_have_no_duplicate_keys_and_errors_are_in_the_json() {
    let r = fake_root("d12");
    std::fs::write(r.join("oomflag"), format!("{FLAG}source=a\nsource=b\n")).unwrap();
    let (code, out, _) = bin(&r, &["report", "--json", "--keep"]);
    assert_eq!(code, 3);
    let fields = &out[out.find("\"fields\":").unwrap()..];
    let fields = &fields[..fields.find('}').unwrap()];
    assert_eq!(fields.matches("\"source\"").count(), 1, "{fields}");
    assert!(
        fields.contains("\"source\":\"b\""),
        "the last wins, as in the text: {fields}"
    );
    // A read error: the JSON says so (not a bare []).
    std::fs::write(r.join("etc/hostname"), "h\n").unwrap();
    let (code, out, _) = bin(&r, &["report", "--json", "--flag", "/etc/hostname/x"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("\"status\":\"error\"") && out.contains("/etc/hostname/x"),
        "{out}"
    );
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn defect_13_symlinks_inside_the_root_never_lead_out_of_it() {
    let base = fake_root("d13");
    let r = base.join("root");
    for d in ["dev", "var/lib", "etc/oom-ext/report.d"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("dev/kmsg"), "").unwrap();
    let out_dir = base.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::os::unix::fs::symlink(&out_dir, r.join("var/lib/oom-ext")).unwrap();
    let ran = base.join("hook-ran");
    let hook = base.join("evil-hook");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", ran.display())).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(&hook, r.join("etc/oom-ext/report.d/10-evil")).unwrap();
    std::fs::write(r.join("oomflag"), FLAG).unwrap();
    let (code, _, _) = bin(&r, &["report"]);
    assert_eq!(code, 1, "the history dir cannot be made inside the root");
    assert!(
        std::fs::read_dir(&out_dir).unwrap().next().is_none(),
        "nothing archived outside"
    );
    assert!(!ran.exists(), "--root is not /: no hooks");
    // Even when run, a symlinked hook is skipped.
    let root = Root::new(&r);
    let list = hooks::list(&root);
    assert_eq!(list.len(), 1);
    assert!(list[0].1.is_err());
    // modules.dep naming a module outside the tree is not loaded.
    let rel = "6.1.0-test";
    std::fs::create_dir_all(r.join(format!("lib/modules/{rel}"))).unwrap();
    std::fs::create_dir_all(r.join("proc/sys/kernel")).unwrap();
    std::fs::write(r.join("proc/sys/kernel/osrelease"), format!("{rel}\n")).unwrap();
    std::fs::write(
        r.join(format!("lib/modules/{rel}/modules.dep")),
        "../../../../outside/oom_ext.ko:\n",
    )
    .unwrap();
    let (_, plan, _) = bin(&r, &["init", "--plan"]);
    assert!(plan.contains(".. component: not loaded"), "{plan}");
    // A symlink in the tree leading out of it resolves inside the root:
    // the file outside is never opened (nor handed to finit_module).
    let outside = base.join("outside-module");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("oom_ext.ko"), "not a module").unwrap();
    std::fs::create_dir_all(r.join(format!("lib/modules/{rel}/updates"))).unwrap();
    std::os::unix::fs::symlink(
        outside.join("oom_ext.ko"),
        r.join(format!("lib/modules/{rel}/updates/oom_ext.ko")),
    )
    .unwrap();
    std::fs::write(
        r.join(format!("lib/modules/{rel}/modules.dep")),
        "updates/oom_ext.ko:\n",
    )
    .unwrap();
    bin(&r, &["init", "--no-guard"]);
    let log = kmsg(&r);
    assert!(
        log.contains("updates/oom_ext.ko: cannot open")
            && log.contains("using the userspace fallback guard"),
        "{log}"
    );
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn defect_14_status_reads_are_capped_and_a_bad_byte_loses_one_line() {
    let r = fake_root("d14");
    let h = r.join("var/lib/oom-ext/history");
    std::fs::create_dir_all(&h).unwrap();
    let big = std::fs::File::create(h.join("9999999999.json")).unwrap();
    big.set_len(100 << 20).unwrap(); // sparse: 100 MB without the disk
    let (code, out, _) = bin(&r, &["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("over the 1048576-byte cap"), "{out}");
    std::fs::create_dir_all(r.join("sys/kernel/oom_ext")).unwrap();
    std::fs::write(
        r.join("sys/kernel/oom_ext/status"),
        b"state=oom\nlast_source=\xff\nreserved_bytes=1048576\noom_events=4\n",
    )
    .unwrap();
    std::fs::write(r.join("run/oom-ext/mode"), "kernel\n").unwrap();
    let (_, out, _) = bin(&r, &["status", "--json"]);
    assert!(
        out.contains("\"state\":\"oom\"") && out.contains("\"oom_events\":4"),
        "{out}"
    );
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn trust_in_pids_a_live_pid_in_the_pidfile_is_not_believed() {
    let r = fake_root("pids");
    // pid 1 is alive, but holds no guard lock and is no oom-ext here.
    std::fs::write(r.join("run/oom-ext/guard.pid"), "1\n").unwrap();
    std::fs::write(r.join("run/oom-ext/guard.lock"), "1\n").unwrap();
    std::fs::write(r.join("run/oom-ext/guard.state"), "state=oom\nkills=99\n").unwrap();
    let (_, out, _) = bin(&r, &["status"]);
    assert!(out.contains("pid 1 (not running)"), "{out}");
    assert!(out.contains("kills=0"), "its state file is not read: {out}");
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn report_hooks_run_only_when_the_root_is_real() {
    let r = fake_root("hookroot");
    let d = r.join("etc/oom-ext/report.d");
    std::fs::create_dir_all(&d).unwrap();
    let ran = r.join("ran");
    std::fs::write(
        d.join("10-x"),
        format!("#!/bin/sh\ntouch {}\n", ran.display()),
    )
    .unwrap();
    std::fs::set_permissions(d.join("10-x"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(r.join("oomflag"), FLAG).unwrap();
    let root = Root::new(&r);
    let log = Log::new(root.clone(), Sink::Kmsg);
    let (code, _) = report::run(&root, &log, &Options::default());
    assert_eq!(code, 3);
    assert!(!ran.exists());
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn trust_in_pids_the_real_guard_is_believed_and_a_swapped_pidfile_is_not() {
    let r = fake_root("realguard");
    for d in ["proc/self", "proc/sys/kernel"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("run/oom-ext/mode"), "fallback\n").unwrap();
    std::fs::write(r.join("run/oom-ext/params"), "bufsize=0\n").unwrap();
    std::fs::write(r.join("proc/self/oom_score_adj"), "0\n").unwrap();
    let mut g = Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(&r)
        .arg("guard")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(r.join("run/oom-ext/guard.state"))
        .unwrap_or_default()
        .contains("pid=")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "guard did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, out, _) = bin(&r, &["status"]);
    assert!(out.contains(&format!("pid {} (running)", g.id())), "{out}");
    // Another live pid in the pidfile: not believed.
    std::fs::write(
        r.join("run/oom-ext/guard.pid"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    let (_, out, _) = bin(&r, &["status"]);
    assert!(out.contains("(not running)"), "{out}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(g.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    g.wait().unwrap();
    std::fs::remove_dir_all(r).unwrap();
}

fn guard_root(tag: &str, params: &str) -> PathBuf {
    let r = fake_root(tag);
    for d in ["proc/self", "proc/sys/kernel"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("run/oom-ext/mode"), "fallback\n").unwrap();
    std::fs::write(r.join("run/oom-ext/params"), params).unwrap();
    std::fs::write(r.join("proc/self/oom_score_adj"), "0\n").unwrap();
    r
}

fn start_guard(r: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(r)
        .arg("guard")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(15), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, s: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), s).unwrap();
}

fn state(r: &Path) -> String {
    std::fs::read_to_string(r.join("run/oom-ext/guard.state")).unwrap_or_default()
}

#[test]
fn defect_09_a_fifo_params_file_on_sighup_does_not_block_the_guard() {
    use nix::sys::signal::Signal;
    let r = guard_root("d09g", "bufsize=0\n");
    let mut g = start_guard(&r);
    wait_until("guard started", || state(&r).contains("pid="));
    std::fs::remove_file(r.join("run/oom-ext/params")).unwrap();
    nix::unistd::mkfifo(
        &r.join("run/oom-ext/params"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    signal(g.id(), Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    signal(g.id(), Signal::SIGTERM);
    let start = Instant::now();
    wait_until("guard stopped on SIGTERM after a HUP with a FIFO", || {
        g.try_wait().unwrap().is_some()
    });
    assert!(start.elapsed() < Duration::from_secs(10));
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn defect_10_a_bad_value_on_sighup_keeps_the_current_value() {
    use nix::sys::signal::Signal;
    let r = guard_root("d10", "bufsize=1\n");
    let mut g = start_guard(&r);
    wait_until("guard armed with 1 MiB", || {
        state(&r).contains("buffer_bytes=1048576")
    });
    std::fs::write(r.join("run/oom-ext/params"), "bufsize=abc\nenabled=0\n").unwrap();
    signal(g.id(), Signal::SIGHUP);
    wait_until("reload logged", || kmsg(&r).contains("keeping 1"));
    let log = kmsg(&r);
    assert!(
        log.contains("bufsize=\"abc\": not a number in 0..4096, keeping 1"),
        "{log}"
    );
    assert!(log.contains("enabled=0 on SIGHUP needs a restart"), "{log}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(state(&r).contains("buffer_bytes=1048576"), "{}", state(&r));
    signal(g.id(), Signal::SIGTERM);
    g.wait().unwrap();
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn defect_11_adopt_racing_a_starting_guard_always_knows_the_pid() {
    use nix::sys::signal::Signal;
    let r = guard_root("d11", "bufsize=0\n");
    for i in 0..15 {
        let _ = std::fs::remove_file(r.join("run/oom-ext/guard.lock"));
        let _ = std::fs::remove_file(r.join("run/oom-ext/guard.pid"));
        let mut g = start_guard(&r);
        let adopt = Command::new(env!("CARGO_BIN_EXE_oom-ext"))
            .arg("--root")
            .arg(&r)
            .args(["guard", "--adopt"])
            .output()
            .unwrap();
        // Either adopt won the lock (it daemonized: exit 0 and the started
        // guard stepped aside) or it adopted the started one: never "pid
        // unknown".
        assert_eq!(
            adopt.status.code(),
            Some(0),
            "run {i}: {}",
            kmsg(&r)
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = g.try_wait();
        wait_until("a pidfile", || r.join("run/oom-ext/guard.pid").exists());
        let pid: u32 = std::fs::read_to_string(r.join("run/oom-ext/guard.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if pid != g.id() {
            // Adopt won and daemonized: the started guard steps aside
            // (let it decide before the winner goes away).
            assert!(g.wait().unwrap().success());
        }
        signal(pid, Signal::SIGTERM);
        wait_until("the guard stopped", || !alive(pid as i32));
        let _ = g.wait();
    }
    assert!(!kmsg(&r).contains("pid unknown"), "{}", kmsg(&r));
    std::fs::remove_dir_all(r).unwrap();
}

#[test]
fn adopt_from_a_unit_with_fewer_capabilities_than_the_guard_knows_its_pid() {
    // The guard unit's CapabilityBoundingSet against a guard resumed from
    // the initramfs with every capability: the kernel refuses it the
    // guard's /proc/PID/exe and fd list (cap_ptrace_access_check).
    use nix::sys::signal::Signal;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("not run: needs root and /usr/bin/setpriv to drop capabilities");
        return;
    }
    let r = guard_root("capadopt", "bufsize=0\n");
    let mut g = start_guard(&r);
    wait_until("the guard's pidfile", || {
        r.join("run/oom-ext/guard.pid").exists()
    });
    let adopt = Command::new("/usr/bin/setpriv")
        .args([
            "--bounding-set",
            "-all,+ipc_lock,+sys_boot,+sys_nice,+sys_resource,+kill,+syslog,+dac_override",
            "--inh-caps",
            "-all",
        ])
        .arg(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(&r)
        .args(["guard", "--adopt"])
        .output()
        .unwrap();
    // Stop the guard before any assertion: a failed test must not leave it.
    signal(g.id(), Signal::SIGTERM);
    let _ = g.wait();
    let log = kmsg(&r);
    assert_eq!(adopt.status.code(), Some(0), "{log}");
    assert!(
        log.contains(&format!("adopted the running guard (pid {})", g.id())),
        "{log}"
    );
    std::fs::remove_dir_all(r).unwrap();
}

/// [`bin`], killed after `secs`: `None` when it had to be (it blocked).
fn bin_within(root: &Path, args: &[&str], secs: u64) -> Option<(i32, String)> {
    common::oom_ext_within(root, args, secs)
}

fn mkfifo(p: &Path) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// Beyond the list (class "paths" and "opens"): the log's own /dev/kmsg is
/// opened inside the root, without blocking, and never written through a
/// link.
#[test]
fn class_dev_kmsg_is_neither_followed_nor_waited_on() {
    let r = fake_root("kmsg");
    std::fs::write(r.join("proc/cmdline"), "oom_ext.bufsize=abc\n").unwrap();
    let outside = r.with_extension("victim");
    std::fs::write(&outside, "precious\n").unwrap();
    std::fs::remove_file(r.join("dev/kmsg")).unwrap();
    std::os::unix::fs::symlink(&outside, r.join("dev/kmsg")).unwrap();
    let (code, out) = bin_within(&r, &["init", "--no-guard"], 20).expect("init blocked");
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious\n");
    // Not lost: stderr has it instead, on one line.
    assert!(out.contains("ignoring oom_ext.bufsize=\"abc\""), "{out}");
    // A hard link to another file is not appended to either.
    std::fs::remove_file(r.join("dev/kmsg")).unwrap();
    std::fs::hard_link(&outside, r.join("dev/kmsg")).unwrap();
    assert_eq!(
        bin_within(&r, &["init", "--no-guard"], 20)
            .expect("init blocked")
            .0,
        0
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious\n");
    // A FIFO without a reader: init does not wait for one.
    std::fs::remove_file(r.join("dev/kmsg")).unwrap();
    mkfifo(&r.join("dev/kmsg"));
    let (code, out) =
        bin_within(&r, &["init", "--no-guard"], 20).expect("init blocked on the FIFO");
    assert_eq!(code, 0, "{out}");
    std::fs::remove_dir_all(&r).unwrap();
    std::fs::remove_file(outside).unwrap();
}

/// Beyond the list: the victim policy's /proc reads (status shows listed
/// pids, `victims add PID` looks the pid up) go through the same file
/// layer: a FIFO does not block, a link out of the root is not followed.
#[test]
fn class_proc_files_of_a_fake_root_are_read_inside_it_and_never_block() {
    let r = fake_root("proc");
    const STAT: &str = "4243 (leak) S 1 4243 4243 0 -1 4194560 3 0 0 0 1 2 0 0 20 0 1 0 98765 12345678 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
    std::fs::write(r.join("run/oom-ext/victims"), "4242 5\n").unwrap();
    mkfifo(&r.join("proc/4242/stat"));
    let (code, out) = bin_within(&r, &["status"], 20).expect("status blocked on proc/4242/stat");
    assert_eq!(code, 0, "{out}");
    let (code, out) = bin_within(&r, &["victims", "add", "4242"], 20).expect("victims blocked");
    assert_eq!(code, 1, "{out}");
    // proc/4243/stat -> a host file with a valid stat line: not followed.
    let outside = r.with_extension("stat");
    std::fs::write(&outside, STAT).unwrap();
    std::fs::create_dir_all(r.join("proc/4243")).unwrap();
    std::os::unix::fs::symlink(&outside, r.join("proc/4243/stat")).unwrap();
    let (code, out) = bin_within(&r, &["victims", "add", "4243"], 20).expect("victims blocked");
    assert_eq!((code, out.contains("no process 4243")), (1, true), "{out}");
    // The same line as a regular file inside the root is the process; its
    // name (any user can choose one) reaches the terminal escaped.
    std::fs::remove_file(r.join("proc/4243/stat")).unwrap();
    std::fs::write(
        r.join("proc/4243/stat"),
        STAT.replace("(leak)", "(le\x1b[2Jak)"),
    )
    .unwrap();
    std::fs::write(
        r.join("proc/4243/cgroup"),
        "0::/system.slice/x\x07.service\n",
    )
    .unwrap();
    let (code, out) = bin_within(&r, &["victims", "add", "4243"], 20).expect("victims blocked");
    assert_eq!(code, 0, "{out}");
    let (code, out) = bin_within(&r, &["victims", "list"], 20).expect("victims blocked");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("4243 le\\u{1b}[2Jak"), "{out:?}");
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
    std::fs::remove_dir_all(&r).unwrap();
    std::fs::remove_file(outside).unwrap();
}

/// Beyond the list: the guard's and the victims list's lock files are
/// regular files inside the root; a FIFO there is refused at once.
#[test]
fn class_lock_files_are_regular_files_inside_the_root() {
    let r = guard_root("locks", "enabled=1\n");
    mkfifo(&r.join("run/oom-ext/victims.lock"));
    let (code, out) = bin_within(&r, &["victims", "add", "x.service"], 20)
        .expect("victims blocked on the FIFO lock");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FIFO"), "{out}");
    std::fs::remove_file(r.join("run/oom-ext/victims.lock")).unwrap();
    // run/oom-ext -> /HOST/out: the lock is made inside the root, not there.
    let out_dir = r.with_extension("out");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let inside = r.join(out_dir.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::rename(r.join("run/oom-ext"), r.join("run/oom-ext.real")).unwrap();
    std::os::unix::fs::symlink(&out_dir, r.join("run/oom-ext")).unwrap();
    let (code, out) =
        bin_within(&r, &["victims", "add", "x.service"], 20).expect("victims blocked");
    assert_eq!(code, 0, "{out}");
    assert!(inside.join("victims.lock").exists());
    assert_eq!(
        std::fs::read_dir(&out_dir).unwrap().count(),
        0,
        "written outside the root"
    );
    std::fs::remove_file(r.join("run/oom-ext")).unwrap();
    std::fs::rename(r.join("run/oom-ext.real"), r.join("run/oom-ext")).unwrap();
    mkfifo(&r.join("run/oom-ext/guard.lock"));
    let (code, out) = bin_within(&r, &["guard"], 20).expect("the guard ran on a FIFO lock");
    assert_eq!(code, 1, "{out}");
    assert!(kmsg(&r).contains("guard.lock: is a FIFO"), "{}", kmsg(&r));
    std::fs::remove_dir_all(&r).unwrap();
    std::fs::remove_dir_all(out_dir).unwrap();
}
