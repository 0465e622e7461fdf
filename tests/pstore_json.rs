//! `oom-ext report --json` carries the pstore record of an oom_ext panic,
//! and hostile pstore entries (a FIFO, a symlink out of the root, a huge
//! record, non-UTF-8 bytes) neither block, nor leak, nor break the JSON.
//! The JSON is parsed by Python's `json`, not by our own code.

mod common;

use oom_ext::log::{Log, Sink};
use oom_ext::report::{self, Options, EXIT_REPORTED};
use oom_ext::root::Root;
use std::path::PathBuf;
use std::process::Command;

const PANIC: &str = "Panic#1 Part1\n\
<0>[   23.4] oom_ext: crash flag: present (/run/late/\"odd\\flag\u{1b}[31m)\n\
<0>[   23.5] Kernel panic - not syncing: oom_ext: OOM state lasted gracetime=7 s (crash flag present), panicking to reboot\n";

fn fake_root(tag: &str) -> PathBuf {
    let r = common::fake_root(
        "pstore-json",
        tag,
        &["proc", "sys/fs/pstore", "var/lib/oom-ext/history"],
    );
    std::fs::write(r.join("proc/uptime"), "12.5 20.0\n").unwrap();
    r
}

/// Python's json.loads of `text`, re-dumped with sorted keys.
fn py_parse(text: &str) -> String {
    let o = Command::new("python3")
        .args([
            "-c",
            "import json,sys; v=json.loads(sys.stdin.read()); v=v if isinstance(v,list) else [v]; \
             [print(json.dumps(x, sort_keys=True)) for x in v]",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3 runs (tools/setup installs it)");
    assert!(
        o.status.success(),
        "python3 json rejected {text:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn run(r: &std::path::Path, keep: bool) -> (i32, String) {
    let root = Root::new(r);
    let log = Log::new(root.clone(), Sink::Kmsg);
    let opts = Options {
        json: true,
        keep,
        ..Options::default()
    };
    report::run(&root, &log, &opts)
}

#[test]
fn report_json_names_the_pstore_finding() {
    let r = fake_root("found");
    std::fs::write(r.join("sys/fs/pstore/dmesg-ramoops-0"), PANIC).unwrap();
    let (code, out) = run(&r, true);
    assert_eq!(code, EXIT_REPORTED, "{out}");
    let v = py_parse(&out);
    let lines: Vec<&str> = v.lines().collect();
    assert_eq!(lines.len(), 1, "{v}");
    for want in [
        r#""status": "pstore""#,
        r#""record": "/sys/fs/pstore/dmesg-ramoops-0""#,
        r#""live": true"#,
        r#""panic": "gracetime""#,
        r#""gracetime_s": 7"#,
        r#""flag_state": "present""#,
        // The hostile path round-trips exactly through the escaping.
        r#""flag": "/run/late/\"odd\\flag\u001b[31m""#,
    ] {
        assert!(lines[0].contains(want), "{want} not in {}", lines[0]);
    }
    assert!(r.join("sys/fs/pstore/dmesg-ramoops-0").exists(), "--keep");
    let (_, again) = run(&r, false);
    assert_eq!(py_parse(&again), v);
    assert!(
        !r.join("sys/fs/pstore/dmesg-ramoops-0").exists(),
        "consumed"
    );
    std::fs::remove_dir_all(&r).unwrap();
}

#[test]
fn hostile_pstore_entries_do_not_block_leak_or_break_the_json() {
    let r = fake_root("hostile");
    let p = r.join("sys/fs/pstore");
    // A FIFO nobody writes: opening it for reading would block forever.
    let fifo = std::ffi::CString::new(p.join("dmesg-fifo-0").into_os_string().into_encoded_bytes())
        .unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    // A symlink to a panic record outside the root, and a directory link.
    let outside = std::env::temp_dir().join(format!("oom-ext-pstore-out-{}", std::process::id()));
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("dmesg"), PANIC).unwrap();
    std::os::unix::fs::symlink(outside.join("dmesg"), p.join("dmesg-link-0")).unwrap();
    std::os::unix::fs::symlink(&outside, p.join("dir-link")).unwrap();
    // A huge record (sparse) whose panic line lies past the read cap.
    let huge = std::fs::File::create(p.join("dmesg-huge-0")).unwrap();
    huge.set_len(1 << 30).unwrap();
    std::os::unix::fs::FileExt::write_at(&huge, PANIC.as_bytes(), 2 << 20).unwrap();
    drop(huge);
    // Non-UTF-8 bytes around a real panic, in the text and the name.
    let mut bad = b"\xff\xfe\x00 oom_ext: crash flag: present (/run/\xc3(\x80x)\n".to_vec();
    bad.extend_from_slice(
        b"Kernel panic - not syncing: oom_ext: OOM state lasted gracetime=9 s (crash flag present)\n",
    );
    std::fs::write(p.join("dmesg-bad-0"), &bad).unwrap();
    std::fs::write(
        p.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"dmesg-\xff")),
        PANIC,
    )
    .unwrap();

    let (tx, rx) = std::sync::mpsc::channel();
    let rr = r.clone();
    std::thread::spawn(move || tx.send(run(&rr, true)).unwrap());
    let (code, out) = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("report blocked (on the FIFO?)");
    assert_eq!(code, EXIT_REPORTED, "{out}");
    let v = py_parse(&out);
    let lines: Vec<&str> = v.lines().collect();
    // The FIFO, both links and the huge record (its panic lies past the
    // cap) are not read; a name that is not UTF-8 is not a pstore name.
    assert_eq!(lines.len(), 1, "only dmesg-bad-0 counts: {v}");
    assert!(
        lines[0].contains(r#""record": "/sys/fs/pstore/dmesg-bad-0""#),
        "{v}"
    );
    assert!(lines[0].contains(r#""gracetime_s": 9"#), "{v}");
    assert!(
        lines[0].contains("\\ufffd"),
        "lossy bytes shown as U+FFFD: {v}"
    );
    assert!(outside.join("dmesg").exists());
    std::fs::remove_dir_all(&r).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn a_pstore_dir_linked_out_of_the_root_is_not_read() {
    let r = fake_root("dirlink");
    let outside = std::env::temp_dir().join(format!("oom-ext-pstore-out2-{}", std::process::id()));
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("dmesg-ramoops-0"), PANIC).unwrap();
    std::fs::remove_dir(r.join("sys/fs/pstore")).unwrap();
    // Absolute: inside the root it names <root>/tmp/..., which is absent.
    std::os::unix::fs::symlink(&outside, r.join("sys/fs/pstore")).unwrap();
    let (code, out) = run(&r, false);
    assert_eq!(py_parse(&out), "", "{out}");
    assert_eq!(code, report::EXIT_NONE, "{out}");
    assert!(outside.join("dmesg-ramoops-0").exists(), "not removed");
    std::fs::remove_dir_all(&r).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}
