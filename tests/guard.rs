//! The guard as a real process against a fake root: startup, idle wake-ups,
//! memory footprint, the lock, SIGHUP and SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn fake_root(tag: &str, mode: &str, params: &str) -> PathBuf {
    let r = std::env::temp_dir().join(format!("oom-ext-guard-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&r);
    for d in ["run/oom-ext", "proc/self", "proc/sys/kernel", "dev"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("run/oom-ext/mode"), format!("{mode}\n")).unwrap();
    std::fs::write(r.join("run/oom-ext/params"), params).unwrap();
    std::fs::write(r.join("dev/kmsg"), "").unwrap();
    std::fs::write(r.join("proc/self/oom_score_adj"), "0\n").unwrap();
    r
}

/// Kills the guard if a test fails before stopping it.
struct Guarded(Child);

impl std::ops::Deref for Guarded {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn guard(root: &Path, extra: &[&str]) -> Guarded {
    Guarded(
        Command::new(env!("CARGO_BIN_EXE_oom-ext"))
            .arg("--root")
            .arg(root)
            .arg("guard")
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait_for(path: &Path, what: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if s.contains(what) {
                return s;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} never contained {what:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn proc_status(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| {
            l.strip_prefix(key).map(|v| {
                v.trim_start_matches(':')
                    .trim()
                    .trim_end_matches(" kB")
                    .parse()
                    .unwrap()
            })
        })
        .unwrap_or_else(|| panic!("{key} missing"))
}

fn stop(mut g: Guarded) -> std::process::ExitStatus {
    let child = &mut g.0;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "guard ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn fallback_guard_idles_without_wakeups_and_stays_small() {
    let root = fake_root("idle", "fallback", "bufsize=1\npsi=1\n");
    let child = guard(&root, &[]);
    let pid = child.id();
    let state = wait_for(&root.join("run/oom-ext/guard.state"), "state=armed");
    assert!(state.contains("buffer_bytes=1048576"), "{state}");
    assert_eq!(
        std::fs::read_to_string(root.join("run/oom-ext/guard.pid")).unwrap(),
        format!("{pid}\n")
    );
    assert_eq!(
        std::fs::read_to_string(root.join("proc/self/oom_score_adj")).unwrap(),
        "-1000\n"
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = proc_status(pid, "voluntary_ctxt_switches")
        + proc_status(pid, "nonvoluntary_ctxt_switches");
    std::thread::sleep(Duration::from_secs(2));
    let after = proc_status(pid, "voluntary_ctxt_switches")
        + proc_status(pid, "nonvoluntary_ctxt_switches");
    let anon_kb = proc_status(pid, "RssAnon");
    let file_kb = proc_status(pid, "RssFile");
    let locked_kb = proc_status(pid, "VmLck");
    eprintln!("guard idle: {} context switches in 2 s; RssAnon {anon_kb} kB (1024 kB buffer), RssFile {file_kb} kB, VmLck {locked_kb} kB", after - before);
    assert!(
        after - before <= 1,
        "guard woke up {} times in 2 s while idle",
        after - before
    );
    assert!(
        anon_kb >= 1024,
        "the 1 MiB buffer is not resident: RssAnon {anon_kb} kB"
    );
    assert!(
        anon_kb - 1024 <= 1024,
        "guard's own anonymous memory {} kB > 1 MiB",
        anon_kb - 1024
    );
    // The writer thread must not bring a locked malloc arena (glibc's is
    // a 64 MiB reservation per thread).
    assert!(
        locked_kb <= 32 * 1024,
        "guard locks {locked_kb} kB of address space"
    );
    assert!(stop(child).success());
    assert!(
        !root.join("run/oom-ext/guard.pid").exists(),
        "pidfile left after SIGTERM"
    );
    let log = std::fs::read_to_string(root.join("dev/kmsg")).unwrap();
    assert!(log.contains("guard running in fallback mode"), "{log}");
    assert!(
        log.contains("stall protection unavailable"),
        "fake root has no PSI; it must say so: {log}"
    );
    assert!(log.contains("guard stopping on signal 15"), "{log}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn one_guard_at_a_time_and_adopt_takes_over() {
    let root = fake_root("lock", "fallback", "bufsize=0\n");
    let first = guard(&root, &[]);
    wait_for(&root.join("run/oom-ext/guard.state"), "pid=");
    let second = Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(&root)
        .arg("guard")
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(0));
    std::fs::remove_file(root.join("run/oom-ext/guard.pid")).unwrap();
    let adopt = Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(&root)
        .args(["guard", "--adopt"])
        .output()
        .unwrap();
    assert_eq!(adopt.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(root.join("run/oom-ext/guard.pid")).unwrap(),
        format!("{}\n", first.id())
    );
    let log = std::fs::read_to_string(root.join("dev/kmsg")).unwrap();
    assert!(
        log.contains(&format!("another guard (pid {}) holds", first.id())),
        "{log}"
    );
    assert!(
        log.contains(&format!("adopted the running guard (pid {})", first.id())),
        "{log}"
    );
    assert!(stop(first).success());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn adopt_without_a_guard_daemonizes_and_writes_the_pidfile() {
    let root = fake_root("daemon", "fallback", "bufsize=0\n");
    let out = Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(&root)
        .args(["guard", "--adopt"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: i32 = std::fs::read_to_string(root.join("run/oom-ext/guard.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "daemon {pid} not running"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    while root.join("run/oom-ext/guard.pid").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn kernel_mode_reads_the_module_status_and_sighup_reloads() {
    let root = fake_root("kernel", "kernel", "bufsize=32\npsi=0\n");
    std::fs::create_dir_all(root.join("sys/kernel/oom_ext")).unwrap();
    std::fs::write(
        root.join("sys/kernel/oom_ext/status"),
        "state=armed\nreserved_bytes=33554432\nlast_release_bytes=6291456\n",
    )
    .unwrap();
    // The module's sysctls; resettime is not there: its write must fail
    // with a log line, not stop the reload.
    std::fs::create_dir_all(root.join("proc/sys/vm/oom_ext")).unwrap();
    std::fs::write(root.join("proc/sys/vm/oom_ext/bufsize"), "32\n").unwrap();
    let child = guard(&root, &[]);
    let state = wait_for(&root.join("run/oom-ext/guard.state"), "module_state=armed");
    assert!(
        state.contains("mode=kernel") && state.contains("psi=off"),
        "{state}"
    );
    std::fs::write(
        root.join("run/oom-ext/params"),
        "bufsize=16\nresettime=60\npsi=0\npsi_kill_ms=5000\n",
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let log = wait_for(&root.join("dev/kmsg"), "psi_kill_ms=5000");
    assert_eq!(
        std::fs::read_to_string(root.join("proc/sys/vm/oom_ext/bufsize")).unwrap(),
        "16\n",
        "{log}"
    );
    assert!(
        log.contains("SIGHUP: vm.oom_ext.bufsize=16")
            && log.contains("SIGHUP: cannot set vm.oom_ext.resettime=60"),
        "{log}"
    );
    assert!(
        !root.join("proc/sys/vm/oom_ext/resettime").exists(),
        "a missing sysctl is not created"
    );
    let st = Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(&root)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let json = String::from_utf8(st.stdout).unwrap();
    assert!(
        json.contains("\"mode\":\"kernel\"")
            && json.contains("\"buffer_bytes\":33554432")
            && json.contains("\"guard_running\":true"),
        "{json}"
    );
    let prom_dir = root.join("textfile");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(&root)
        .args(["status", "--textfile"])
        .arg(&prom_dir)
        .output()
        .unwrap();
    assert!(st.status.success());
    let prom = std::fs::read_to_string(prom_dir.join("oom_ext.prom")).unwrap();
    for want in [
        "oom_ext_mode{mode=\"kernel\"} 1",
        "oom_ext_buffer_bytes 33554432",
        "oom_ext_guard_up 1",
        "oom_ext_in_oom 0",
        "oom_ext_last_release_bytes 6291456",
        "oom_ext_memcg_kills_total 0",
    ] {
        assert!(prom.contains(want), "{want} missing in:\n{prom}");
    }
    assert_eq!(
        std::fs::read_dir(&prom_dir).unwrap().count(),
        1,
        "temp file left behind"
    );
    assert!(stop(child).success());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn off_mode_guard_exits_at_once() {
    let root = fake_root("off", "off", "enabled=0\n");
    let st = guard(&root, &[]).0.wait().unwrap();
    assert!(st.success());
    assert!(!root.join("run/oom-ext/guard.pid").exists());
    std::fs::remove_dir_all(root).unwrap();
}

/// A fake root whose /dev/kmsg is a FIFO the test writes kernel-log lines
/// into. The test holds it open read-write from the start, so the FIFO never
/// loses its last writer (which would hang it up for the guard).
fn fifo_root(tag: &str, params: &str) -> (PathBuf, std::fs::File) {
    let root = fake_root(tag, "fallback", params);
    std::fs::remove_file(root.join("dev/kmsg")).unwrap();
    nix::unistd::mkfifo(
        &root.join("dev/kmsg"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::fs::write(
        root.join("proc/meminfo"),
        "MemTotal: 4000000 kB\nMemAvailable: 3000000 kB\n",
    )
    .unwrap();
    std::fs::write(root.join("proc/vmstat"), "nr_free_pages 1\noom_kill 0\n").unwrap();
    std::fs::write(root.join("proc/sys/kernel/osrelease"), "6.1.0-56-amd64\n").unwrap();
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(root.join("dev/kmsg"))
        .unwrap();
    (root, fifo)
}

const KILL: &str =
    "Out of memory: Killed process 4242 (hog) total-vm:528388kB, anon-rss:401232kB, file-rss:4kB\n";

#[test]
fn fallback_oom_cycle_flag_release_end_rearm() {
    use std::io::Write;
    let (root, mut kmsg) = fifo_root("cycle", "bufsize=1\nresettime=1\npsi=0\n");
    let child = guard(&root, &[]);
    wait_for(&root.join("run/oom-ext/guard.state"), "state=armed");
    kmsg.write_all(KILL.as_bytes()).unwrap();
    let state = wait_for(&root.join("run/oom-ext/guard.state"), "state=oom");
    assert!(
        state.contains("buffer_bytes=0") && state.contains("releases=1"),
        "{state}"
    );
    let flag = wait_for(&root.join("oomflag"), "victim=");
    assert!(
        flag.starts_with("oom_ext_flag=1\nsource=vmstat\n"),
        "{flag}"
    );
    assert!(
        flag.contains("kernel=6.1.0-56-amd64\n") && flag.contains("mem_available_kb=3000000\n"),
        "{flag}"
    );
    assert!(flag.contains("victim=4242 hog 401232\n"), "{flag}");
    // 5 s without evidence and enough memory: the state ends, the flag goes,
    // the buffer comes back after resettime (1 s).
    let state = wait_for(&root.join("run/oom-ext/guard.state"), "rearms=1");
    assert!(
        state.contains("state=armed") && state.contains("buffer_bytes=1048576"),
        "{state}"
    );
    assert!(
        !root.join("oomflag").exists(),
        "flag left after the OOM state ended"
    );
    assert!(stop(child).success());
    drop(kmsg);
    std::fs::remove_dir_all(root).unwrap();
}

/// Issue 17: vmstat's `oom_kill` counts a cgroup's OOM kills too. A rise
/// with its `Memory cgroup out of memory` line is a cgroup kill (counted,
/// no OOM state); a rise no kill line explains is a system OOM, after the
/// guard has waited for the line.
#[test]
fn fallback_a_cgroup_kill_is_counted_and_no_system_oom() {
    use std::io::Write;
    let (root, mut kmsg) = fifo_root("memcg", "bufsize=1\npsi=0\n");
    let child = guard(&root, &[]);
    let state = root.join("run/oom-ext/guard.state");
    wait_for(&state, "state=armed");
    // As the kernel does it: the count first, then the summary and kill lines.
    std::fs::write(root.join("proc/vmstat"), "nr_free_pages 1\noom_kill 1\n").unwrap();
    kmsg.write_all(
        b"6,911,81234560,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/memhog.service,task_memcg=/system.slice/memhog.service,task=stress-ng-vm,pid=1234,uid=0\n\
          3,912,81234567,-;Memory cgroup out of memory: Killed process 1234 (stress-ng-vm) total-vm:90516kB, anon-rss:63148kB, file-rss:1280kB, shmem-rss:0kB, UID:0 pgtables:204kB oom_score_adj:0\n",
    )
    .unwrap();
    wait_for(&state, "memcg_kills=1");
    // Well past the wait for a kill line: still no OOM state.
    std::thread::sleep(Duration::from_millis(600));
    let s = std::fs::read_to_string(&state).unwrap();
    assert!(
        s.contains("state=armed") && s.contains("oom_events=0") && s.contains("releases=0"),
        "{s}"
    );
    assert!(!root.join("oomflag").exists(), "a flag for a cgroup kill");
    // A rise without a kill line (a line lost): a system OOM, the flag
    // counting the system's kills only and the cgroup kill on its own line.
    std::fs::write(root.join("proc/vmstat"), "nr_free_pages 1\noom_kill 2\n").unwrap();
    let start = Instant::now();
    kmsg.write_all(b"6,913,81300000,-;some other message\n")
        .unwrap();
    let s = wait_for(&state, "state=oom");
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "no wait for the kill line: {:?}",
        start.elapsed()
    );
    assert!(
        s.contains("oom_events=1") && s.contains("memcg_kills=1"),
        "{s}"
    );
    let flag = wait_for(&root.join("oomflag"), "memcg_kills=");
    assert!(
        flag.contains("source=vmstat\n")
            && flag.contains("oom_calls=1\n")
            && flag.contains("memcg_kills=1\n"),
        "{flag}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(&root)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"memcg_kills\":1"), "{text}");
    assert!(stop(child).success());
    drop(kmsg);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn fallback_gracetime_marks_the_flag_and_reboots() {
    use std::io::Write;
    // 7 s: the shortest gracetime there is (the OOM state lasts at least 6 s).
    let (root, mut kmsg) = fifo_root("grace", "bufsize=1\ngracetime=7\npsi=0\n");
    // A persistent OOM: memory never comes back, so the state cannot end.
    std::fs::write(
        root.join("proc/meminfo"),
        "MemTotal: 4000000 kB\nMemAvailable: 1000 kB\n",
    )
    .unwrap();
    let g = guard(&root, &[]);
    wait_for(&root.join("run/oom-ext/guard.state"), "state=armed");
    kmsg.write_all(KILL.as_bytes()).unwrap();
    // Against a fake root the guard records the reboot instead of doing it.
    let start = Instant::now();
    while !std::fs::read_to_string(root.join("run/oom-ext/reboot-requested"))
        .is_ok_and(|s| s.contains('1'))
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no reboot request after gracetime=7"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        start.elapsed() >= Duration::from_secs(6),
        "rebooted before gracetime"
    );
    let flag = std::fs::read_to_string(root.join("oomflag")).unwrap();
    assert!(flag.ends_with("gracetime_reboot=1\n"), "{flag}");
    let mut g = g;
    let start = Instant::now();
    while g.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "guard went on after the reboot request"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The next boot's report names the hang.
    let out = Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(&root)
        .arg("report")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ended by:    gracetime reboot") && text.contains("pid 4242 hog"),
        "{text}"
    );
    drop(kmsg);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn fallback_policy_panic_reboots_at_the_first_oom_and_the_report_names_it() {
    use std::io::Write;
    let (root, mut kmsg) = fifo_root("panic", "bufsize=1\npolicy=panic\npsi=0\n");
    let mut g = guard(&root, &[]);
    wait_for(&root.join("run/oom-ext/guard.state"), "state=armed");
    kmsg.write_all(KILL.as_bytes()).unwrap();
    // Fallback mode: the guard's own first OOM evidence, then a reboot
    // (recorded, against a fake root) with the policy in the flag.
    wait_for(&root.join("run/oom-ext/reboot-requested"), "1");
    let flag = std::fs::read_to_string(root.join("oomflag")).unwrap();
    assert!(flag.contains("\npolicy=panic\n"), "{flag}");
    let start = Instant::now();
    while g.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "guard went on after the reboot request"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_oom-ext"))
        .arg("--root")
        .arg(&root)
        .arg("report")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ended by:    policy=panic"), "{text}");
    drop(kmsg);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn pid_and_state_files_replace_links_and_never_write_through_them() {
    let root = fake_root("links", "fallback", "bufsize=0\npsi=0\n");
    let victim = root.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    for f in ["guard.pid", "guard.state"] {
        std::os::unix::fs::symlink(&victim, root.join("run/oom-ext").join(f)).unwrap();
    }
    let child = guard(&root, &[]);
    let pid = child.id();
    wait_for(&root.join("run/oom-ext/guard.state"), "pid=");
    wait_for(&root.join("run/oom-ext/guard.pid"), &pid.to_string());
    for f in ["guard.pid", "guard.state"] {
        let m = std::fs::symlink_metadata(root.join("run/oom-ext").join(f)).unwrap();
        assert!(m.file_type().is_file(), "{f} is still a link");
    }
    assert!(stop(child).success());
    assert!(
        !root.join("run/oom-ext/guard.pid").exists(),
        "removed at the stop"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_run_dir_linked_out_of_the_root_gets_no_lock_or_pid_file() {
    let root = fake_root("rundir", "fallback", "bufsize=0\npsi=0\n");
    let outside = root.with_extension("outside");
    let _ = std::fs::remove_dir_all(&outside);
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::remove_dir_all(root.join("run/oom-ext")).unwrap();
    // Absolute: inside the root it names <root>/<outside>, which is absent.
    std::os::unix::fs::symlink(&outside, root.join("run/oom-ext")).unwrap();
    let mut child = guard(&root, &[]);
    let start = Instant::now();
    let st = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "guard ran on");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(st.code(), Some(1), "cannot lock: exits 1");
    let left: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(left.is_empty(), "written outside the root: {left:?}");
    let log = std::fs::read_to_string(root.join("dev/kmsg")).unwrap();
    assert!(log.contains("cannot lock /run/oom-ext/guard.lock"), "{log}");
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn a_module_status_linked_out_of_the_root_is_not_read() {
    let root = fake_root("statuslink", "kernel", "bufsize=32\npsi=0\n");
    let outside = root.with_extension("status-outside");
    std::fs::write(&outside, "state=oom\nreserved_bytes=0\n").unwrap();
    std::fs::create_dir_all(root.join("sys/kernel/oom_ext")).unwrap();
    // Absolute: inside the root it names <root>/<outside>, which is absent.
    std::os::unix::fs::symlink(&outside, root.join("sys/kernel/oom_ext/status")).unwrap();
    let child = guard(&root, &[]);
    let log = wait_for(
        &root.join("dev/kmsg"),
        "kernel mode but cannot open /sys/kernel/oom_ext/status",
    );
    let state = wait_for(&root.join("run/oom-ext/guard.state"), "pid=");
    assert!(
        !state.contains("module_state=oom"),
        "read outside: {state} {log}"
    );
    assert!(stop(child).success());
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::remove_file(&outside).unwrap();
}
