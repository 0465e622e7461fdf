//! Reading the policy files and the run-time ordered list (under the root).
//!
//! `/etc/oom-ext/policy.conf`, then `/etc/oom-ext/policy.d/*.conf` in
//! byte order of their names; later lines win. A missing file is no rule;
//! a file that is not a regular file, too big or unreadable is one log
//! line and left out; a bad line is one log line (`FILE:LINE: reason`).
//! Reads go through [`crate::rootfs`]: inside the root, regular files only
//! (a FIFO cannot hang the guard, a symlink is not followed), at most
//! [`FILE_CAP`] bytes.
#![forbid(unsafe_code)]

use super::rank::Listed;
use super::rules::Policy;
use crate::root::Root;
use crate::rootfs;

pub const POLICY_CONF: &str = "etc/oom-ext/policy.conf";
pub const POLICY_D: &str = "etc/oom-ext/policy.d";
/// The run-time ordered list, written by `oom-ext victims`.
pub const VICTIMS: &str = "run/oom-ext/victims";
pub const FILE_CAP: usize = 64 * 1024;
/// policy.d files read at most (the rest: one log line).
pub const MAX_FILES: usize = 64;
/// Entries of the run-time list kept at most.
pub const MAX_LISTED: usize = 256;

/// A regular file's text inside the root (crate::rootfs: resolved in the
/// root, a symlink as the last component is not followed, FIFOs and
/// devices are never opened), at most `cap` bytes; `Ok(None)` when absent.
pub fn read_regular(root: &Root, path: &str, cap: usize) -> Result<Option<String>, String> {
    match rootfs::read(root, path, cap) {
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| "not UTF-8".to_string()),
        Err(rootfs::Error::Missing) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The policy in effect and one message per problem (file, line, reason).
pub fn load_policy(root: &Root) -> (Policy, Vec<String>) {
    let mut policy = Policy::default();
    let mut problems = Vec::new();
    let mut files = vec![format!("/{POLICY_CONF}")];
    // Listed inside the root, like its files are read.
    match rootfs::open_dir(root, POLICY_D).and_then(|d| d.entries()) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .into_iter()
                .filter_map(|(n, _)| String::from_utf8(n).ok())
                .filter(|n| n.ends_with(".conf") && !n.starts_with('.'))
                .collect();
            names.sort();
            if names.len() > MAX_FILES {
                problems.push(format!(
                    "/{POLICY_D}: {} files, only the first {MAX_FILES} are read",
                    names.len()
                ));
                names.truncate(MAX_FILES);
            }
            files.extend(names.into_iter().map(|n| format!("/{POLICY_D}/{n}")));
        }
        Err(rootfs::Error::Missing) => {}
        Err(e) => problems.push(format!("/{POLICY_D}: {e}, its files are not read")),
    }
    for f in &files {
        match read_regular(root, f, FILE_CAP) {
            Ok(Some(text)) => {
                problems.extend(policy.add_file(f, &text).iter().map(|b| b.to_string()));
            }
            Ok(None) => {}
            Err(e) => problems.push(format!("{f}: {e}, file ignored")),
        }
    }
    (policy, problems)
}

/// The run-time list's file: one entry a line, `PID START_TIME` or a unit
/// name. Bad lines are skipped (the file is ours; `victims` writes it).
pub fn parse_list(text: &str) -> Vec<Listed> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let first = w.next()?;
            if let Ok(pid) = first.parse::<u32>() {
                let start_time = w.next().and_then(|s| s.parse().ok());
                return Some(Listed::Pid { pid, start_time });
            }
            valid_unit(first).then(|| Listed::Unit(first.to_string()))
        })
        .take(MAX_LISTED)
        .collect()
}

pub fn serialize_list(list: &[Listed]) -> String {
    list.iter()
        .map(|l| match l {
            Listed::Pid {
                pid,
                start_time: Some(s),
            } => format!("{pid} {s}\n"),
            Listed::Pid { pid, .. } => format!("{pid}\n"),
            Listed::Unit(u) => format!("{u}\n"),
        })
        .collect()
}

/// A unit name a list may hold: `NAME.service` or `NAME.scope`, printable,
/// no `/`.
pub fn valid_unit(u: &str) -> bool {
    (u.ends_with(".service") || u.ends_with(".scope"))
        && u.len() <= 255
        && u.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

/// The run-time list; empty when there is none.
pub fn load_list(root: &Root) -> (Vec<Listed>, Option<String>) {
    match read_regular(root, VICTIMS, FILE_CAP) {
        Ok(Some(t)) => (parse_list(&t), None),
        Ok(None) => (Vec::new(), None),
        Err(e) => (Vec::new(), Some(format!("/{VICTIMS}: {e}, list ignored"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("oom-ext-load-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join(POLICY_D)).unwrap();
        d
    }

    #[test]
    fn later_files_win_and_bad_lines_are_named() {
        let d = scratch("order");
        std::fs::write(d.join(POLICY_CONF), "protect name=web\nbogus\n").unwrap();
        std::fs::write(d.join(POLICY_D).join("20-b.conf"), "prefer name=web\n").unwrap();
        std::fs::write(d.join(POLICY_D).join("10-a.conf"), "avoid name=web\n").unwrap();
        std::fs::write(
            d.join(POLICY_D).join("30-c.conf.disabled"),
            "protect name=web\n",
        )
        .unwrap();
        std::fs::create_dir(d.join(POLICY_D).join("40-dir.conf")).unwrap();
        let (pol, problems) = load_policy(&Root::new(&d));
        std::fs::remove_dir_all(&d).unwrap();
        let verbs: Vec<&str> = pol.rules.iter().map(|r| r.verb.as_str()).collect();
        assert_eq!(verbs, ["protect", "avoid", "prefer"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("/etc/oom-ext/policy.conf:2: unknown word"));
        assert_eq!(
            problems[1],
            "/etc/oom-ext/policy.d/40-dir.conf: is a directory, not a regular file: not opened, file ignored"
        );
    }

    #[test]
    fn no_files_no_rules() {
        let d = std::env::temp_dir().join("oom-ext-load-none-does-not-exist");
        let (pol, problems) = load_policy(&Root::new(&d));
        assert!(pol.rules.is_empty() && problems.is_empty());
        assert_eq!(load_list(&Root::new(&d)), (Vec::new(), None));
    }

    #[test]
    fn oversized_and_non_utf8_files_are_refused_whole() {
        let d = scratch("big");
        std::fs::write(d.join(POLICY_CONF), vec![b'#'; FILE_CAP + 1]).unwrap();
        std::fs::write(d.join(POLICY_D).join("x.conf"), b"prefer name=\xff\n").unwrap();
        let (pol, problems) = load_policy(&Root::new(&d));
        std::fs::remove_dir_all(&d).unwrap();
        assert!(pol.rules.is_empty());
        assert!(
            problems[0].contains("over the 65536-byte cap"),
            "{problems:?}"
        );
        assert!(problems[1].contains("not UTF-8"), "{problems:?}");
    }

    #[test]
    fn a_fifo_does_not_hang_the_reader() {
        let d = scratch("fifo");
        nix::unistd::mkfifo(&d.join(POLICY_CONF), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let (_, problems) = load_policy(&Root::new(&d));
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(
            problems,
            ["/etc/oom-ext/policy.conf: is a FIFO, not a regular file: not opened, file ignored"]
        );
    }

    #[test]
    fn a_symlinked_policy_d_is_listed_inside_the_root() {
        // policy.d -> /HOST/out: resolved inside the root ($R/HOST/out),
        // never the host's directory of that name.
        let d = scratch("dirlink");
        let out = d.with_extension("out");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("20-host.conf"), "protect name=host\n").unwrap();
        let inside = d.join(out.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("10-in.conf"), "avoid name=in\n").unwrap();
        std::fs::remove_dir(d.join(POLICY_D)).unwrap();
        std::os::unix::fs::symlink(&out, d.join(POLICY_D)).unwrap();
        let (pol, problems) = load_policy(&Root::new(&d));
        std::fs::remove_dir_all(&d).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
        let verbs: Vec<&str> = pol.rules.iter().map(|r| r.verb.as_str()).collect();
        assert_eq!(verbs, ["avoid"], "{problems:?}");
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn a_symlinked_file_is_not_followed() {
        let d = scratch("link");
        std::fs::write(d.join("secret"), "protect name=x\n").unwrap();
        std::os::unix::fs::symlink(d.join("secret"), d.join(POLICY_D).join("10-l.conf")).unwrap();
        let (pol, problems) = load_policy(&Root::new(&d));
        std::fs::remove_dir_all(&d).unwrap();
        assert!(pol.rules.is_empty());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("symlink"), "{problems:?}");
    }

    #[test]
    fn the_list_round_trips_and_skips_junk() {
        let list = vec![
            Listed::Pid {
                pid: 5,
                start_time: Some(77),
            },
            Listed::Unit("leak.service".into()),
            Listed::Pid {
                pid: 9,
                start_time: None,
            },
        ];
        assert_eq!(parse_list(&serialize_list(&list)), list);
        assert_eq!(
            parse_list("junk\n../x.service\n\n-1\nx.slice\n"),
            Vec::<Listed>::new()
        );
        assert_eq!(parse_list(&"1\n".repeat(1000)).len(), MAX_LISTED);
    }
}
