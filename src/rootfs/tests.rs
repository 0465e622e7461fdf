use super::*;
use std::path::PathBuf;

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oom-ext-rootfs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn symlinks_resolve_inside_the_root_never_out_of_it() {
    let base = tmp("inroot");
    let r = base.join("root");
    std::fs::create_dir_all(r.join("inside")).unwrap();
    std::fs::write(base.join("outside"), "host secret").unwrap();
    std::fs::write(r.join("inside/x"), "in root").unwrap();
    // An absolute link and a ../ link both try to leave the root.
    std::os::unix::fs::symlink(base.join("outside").parent().unwrap(), r.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../..", r.join("inside/up")).unwrap();
    let root = Root::new(&r);
    assert!(matches!(
        read(&root, "/abs/outside", SMALL),
        Err(Error::Missing)
    ));
    assert!(matches!(
        read(&root, "/inside/up/outside", SMALL),
        Err(Error::Missing)
    ));
    assert_eq!(
        read(&root, "/inside/up/inside/x", SMALL).unwrap(),
        b"in root"
    );
    assert!(matches!(
        read(&root, "/../../outside", SMALL),
        Err(Error::Missing)
    ));
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn magic_links_are_refused() {
    let d = tmp("magic");
    std::fs::create_dir_all(d.join("proc")).unwrap();
    std::os::unix::fs::symlink("/proc/self/root", d.join("proc/r")).unwrap();
    let root = Root::system();
    // Through the real /proc, /proc/self/root is a magic link.
    let e = read(&root, "/proc/self/root/etc/hostname", SMALL).unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_final_symlink_fifo_device_or_directory_is_never_opened() {
    let d = tmp("kinds");
    std::fs::write(d.join("target"), "t").unwrap();
    std::os::unix::fs::symlink("target", d.join("link")).unwrap();
    nix::unistd::mkfifo(&d.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::create_dir(d.join("dir")).unwrap();
    let root = Root::new(&d);
    let start = std::time::Instant::now();
    for (p, want) in [
        ("/link", "symlink"),
        ("/fifo", "FIFO"),
        ("/dir", "directory"),
    ] {
        match read(&root, p, SMALL) {
            Err(Error::NotRegular(k)) => assert_eq!(k, want, "{p}"),
            other => panic!("{p}: {other:?}"),
        }
    }
    match read(&Root::system(), "/dev/null", SMALL) {
        Err(Error::NotRegular(k)) => assert_eq!(k, "device"),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn reads_are_capped_and_say_so() {
    let d = tmp("cap");
    std::fs::write(d.join("big"), vec![b'a'; 1000]).unwrap();
    let root = Root::new(&d);
    match read(&root, "/big", 999) {
        Err(Error::TooBig {
            cap: 999,
            size: 1000,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(read(&root, "/big", 1000).unwrap().len(), 1000);
    let h = read_head(&root, "/big", 10).unwrap();
    assert_eq!((h.bytes.len(), h.truncated, h.size), (10, true, 1000));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn replace_never_follows_or_truncates_and_leaves_no_temp() {
    let d = tmp("replace");
    std::fs::write(d.join("victim"), "precious").unwrap();
    std::os::unix::fs::symlink(d.join("victim"), d.join("out")).unwrap();
    let root = Root::new(&d);
    replace(&root, "/out", b"new", 0o644).unwrap();
    assert_eq!(
        std::fs::read_to_string(d.join("victim")).unwrap(),
        "precious"
    );
    assert_eq!(std::fs::read_to_string(d.join("out")).unwrap(), "new");
    assert!(!d
        .join("out")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    let names: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // Two temp names never repeat.
    let a = temp_name(&CString::new("x").unwrap());
    assert_ne!(a, temp_name(&CString::new("x").unwrap()));
    // A directory in the way: an error, the directory stays.
    std::fs::create_dir(d.join("isdir")).unwrap();
    assert!(replace(&root, "/isdir", b"x", 0o644).is_err());
    assert!(d.join("isdir").is_dir());
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn create_dir_all_stays_inside_and_entries_list_raw_names() {
    let base = tmp("mkdir");
    let r = base.join("root");
    std::fs::create_dir_all(r.join("var")).unwrap();
    std::fs::create_dir_all(base.join("out")).unwrap();
    std::os::unix::fs::symlink(base.join("out"), r.join("var/lib")).unwrap();
    let root = Root::new(&r);
    // The link points at a path that does not exist inside the root.
    assert!(create_dir_all(&root, "/var/lib/oom-ext/history", 0o755).is_err());
    assert!(
        !base.join("out/oom-ext").exists(),
        "nothing written outside"
    );
    let dir = create_dir_all(&root, "/var/x/history", 0o755).unwrap();
    assert!(r.join("var/x/history").is_dir());
    dir.replace(&CString::new(&b"a\xff"[..]).unwrap(), b"1", 0o644)
        .unwrap();
    let e = dir.entries().unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, b"a\xff");
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn configured_paths_component_by_component() {
    for ok in ["/oomflag", "/var/lib/oom-ext/flag", "/a.b/c-d_e~"] {
        assert_eq!(check_path(ok.as_bytes()), Ok(()), "{ok}");
    }
    let long = format!("/{}", "a".repeat(255));
    for bad in [
        &b""[..],
        b"/",
        b"oomflag",
        b"./x",
        b"/a/../x",
        b"/..",
        b"/.",
        b"/a/./b",
        b"//a",
        b"/a//b",
        b"/a/",
        b"/a b",
        b"/a\"b",
        b"/a\nb",
        b"/a\x7fb",
        b"/caf\xe9",
        b"/a\0b",
        long.as_bytes(),
    ] {
        assert!(check_path(bad).is_err(), "{:?}", escape(bad, 64));
    }
}

#[test]
fn escape_shows_every_byte_safely() {
    assert_eq!(escape(b"a\x1b[2J\"\\\xff", 64), "a\\x1b[2J\\\"\\\\\\xff");
    assert_eq!(escape(b"abcdef", 3), "abc...");
}

#[test]
fn proc_files_read_through_the_real_root() {
    let root = Root::system();
    for p in [
        "/proc/meminfo",
        "/proc/vmstat",
        "/proc/self/oom_score_adj",
        "/proc/cmdline",
    ] {
        let b = read(&root, p, SMALL).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(!b.is_empty(), "{p}");
    }
    assert!(
        String::from_utf8(read(&root, "/proc/meminfo", SMALL).unwrap())
            .unwrap()
            .contains("MemAvailable:")
    );
}

#[test]
fn write_existing_never_truncates_a_link_a_fifo_or_a_missing_file() {
    let base = tmp("wexist");
    let r = base.join("root");
    std::fs::create_dir_all(r.join("proc/sys/kernel")).unwrap();
    let root = Root::new(&r);
    let p = "proc/sys/kernel/panic";
    // A stand-in with content is replaced by exactly the new value.
    std::fs::write(r.join(p), "12345\n").unwrap();
    write_existing(&root, p, b"7\n").unwrap();
    assert_eq!(std::fs::read_to_string(r.join(p)).unwrap(), "7\n");
    // A hard link to a file elsewhere: refused, nothing cut.
    std::fs::remove_file(r.join(p)).unwrap();
    std::fs::write(base.join("precious"), "precious\n").unwrap();
    std::fs::hard_link(base.join("precious"), r.join(p)).unwrap();
    assert!(write_existing(&root, p, b"0\n").is_err());
    assert_eq!(
        std::fs::read_to_string(base.join("precious")).unwrap(),
        "precious\n"
    );
    // A symlink: refused, not followed.
    std::fs::remove_file(r.join(p)).unwrap();
    std::os::unix::fs::symlink(base.join("precious"), r.join(p)).unwrap();
    assert!(matches!(
        write_existing(&root, p, b"0\n"),
        Err(Error::NotRegular("symlink"))
    ));
    assert_eq!(
        std::fs::read_to_string(base.join("precious")).unwrap(),
        "precious\n"
    );
    // A FIFO without a reader: no wait, no write; a missing file: not made.
    std::fs::remove_file(r.join(p)).unwrap();
    nix::unistd::mkfifo(&r.join(p), Mode::from_bits_truncate(0o600)).unwrap();
    assert!(write_existing(&root, p, b"0\n").is_err());
    std::fs::remove_file(r.join(p)).unwrap();
    assert!(matches!(
        write_existing(&root, p, b"0\n"),
        Err(Error::Missing)
    ));
    assert!(!r.join(p).exists());
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn a_procfs_file_may_change_its_inode_between_lstat_and_open() {
    // Measured on this host: /proc/sys/kernel/osrelease went from inode
    // 135222 to 276156 across `echo 2 >/proc/sys/vm/drop_caches`.
    let root = Root::system();
    let (dir, name) = parent(&root, "proc/sys/kernel/osrelease").unwrap();
    let before = dir.lstat(&name).unwrap();
    let mut after = before;
    assert!(same_file(&before, &after, || panic!("asked without need")));
    after.st_ino += 1;
    assert!(
        same_file(&before, &after, || true),
        "procfs: a new inode is the same file"
    );
    assert!(
        !same_file(&before, &after, || false),
        "elsewhere: a new inode is another file"
    );
    after.st_ino = before.st_ino;
    after.st_dev += 1;
    assert!(!same_file(&before, &after, || true));
    after.st_dev = before.st_dev;
    after.st_mode = (after.st_mode & !libc::S_IFMT) | libc::S_IFIFO;
    assert!(!same_file(&before, &after, || true));
    // And the real file still reads.
    assert!(read_small(&root, "proc/sys/kernel/osrelease").is_some());
}
